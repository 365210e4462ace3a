package bench

import "syscall"

// deathSig makes the kernel kill a child when the benchmark dies, so no
// process outlives an interrupted run.
func deathSig() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
