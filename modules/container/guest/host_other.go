//go:build !wasip1

package guest

import "fmt"

// Outside a container (tests of a container's processors on the host)
// log lines go to standard output and Map is refused.

func hostLog(line string) { fmt.Println(line) }

func hostMap([]byte) error { return fmt.Errorf("%w: only inside a container", errMap) }
