//go:build !linux

package soak

import "os/exec"

// dieWithParent is Linux-only; elsewhere t.Cleanup alone ends children.
func dieWithParent(*exec.Cmd) {}
