//go:build !linux

package bench

import "syscall"

func deathSig() *syscall.SysProcAttr { return nil }
