// Command jetworker is the one binary of jetworker: server, worker, dev
// stack, NATS node and the client commands.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "jetworker:", err)
		os.Exit(1)
	}
}
