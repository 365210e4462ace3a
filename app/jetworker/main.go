// Command jetworker is the one binary of jetworker: server, worker, dev
// stack, NATS node and the client commands.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/jetworker/jetworker/modules/natsconn"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Stderr))
}

// execute runs the command tree and returns the exit code; an error is
// printed once, worded by explain (with the full chain at debug level).
func execute(args []string, stderr io.Writer) int {
	root := rootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	prof.stop()
	if err == nil {
		return exitOK
	}
	// A permission NATS denied ends a client command (clientConn): it,
	// not the cancellation it caused, is what went wrong.
	if cmd != nil && cmd.Context() != nil {
		if pe := natsconn.Denial(cmd.Context()); pe != nil {
			err = pe
		}
	}
	msg, code := explain(err)
	fmt.Fprintln(stderr, "jetworker:", msg)
	if g.logLevel == "debug" && msg != err.Error() {
		fmt.Fprintln(stderr, "jetworker: detail:", err)
	}
	return code
}
