package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/jetworker/jetworker/modules/client"
)

// printHops prints the path of a traced request, one server per block:
//
//	hops of the run request (2 servers):
//	  n1: in  client "jetworker-cli" on jw.demo.server.srv-a.run
//	      out route to n0 (hop 1)
//	  n0 (hop 1): in  route from n1
//	      out client "jetworker" sub jw.*.server.srv-a.run queue srv-a
func printHops(w io.Writer, what string, t *client.MsgTrace) {
	if t == nil || len(t.Hops) == 0 {
		fmt.Fprintf(w, "hops of the %s: no trace events (message tracing needs nats-server 2.11 or later)\n", what)
		return
	}
	fmt.Fprintf(w, "hops of the %s (%d %s):\n", what, len(t.Hops), plural(len(t.Hops), "server", "servers"))
	for _, h := range t.Hops {
		name := h.Server
		if h.Hop != "" {
			name += " (hop " + h.Hop + ")"
		}
		fmt.Fprintf(w, "  %s: in  %s\n", name, describeConn(h.In, true))
		if h.Stream != "" {
			fmt.Fprintf(w, "      stored in stream %s\n", h.Stream)
		}
		if len(h.Out) == 0 {
			fmt.Fprintf(w, "      out nowhere (no subscriber on this server)\n")
		}
		for _, o := range h.Out {
			fmt.Fprintf(w, "      out %s\n", describeConn(o, false))
		}
	}
	if len(t.Missing) > 0 {
		fmt.Fprintf(w, "  (no report in time from hop %s)\n", strings.Join(t.Missing, ", "))
	}
	if t.Undecodable > 0 {
		fmt.Fprintf(w, "  (%d trace events did not decode)\n", t.Undecodable)
	}
}

func describeConn(c client.Conn, in bool) string {
	var b strings.Builder
	b.WriteString(c.Kind)
	switch {
	case c.Kind == "client":
		if c.Name != "" {
			fmt.Fprintf(&b, " %q", c.Name)
		}
		if in && c.Subject != "" {
			b.WriteString(" on " + c.Subject)
		}
		if !in && c.Subject != "" {
			b.WriteString(" sub " + c.Subject)
		}
		if c.Queue != "" {
			b.WriteString(" queue " + c.Queue)
		}
	case in:
		b.WriteString(" from " + orDash(c.Name))
	default:
		b.WriteString(" to " + orDash(c.Name))
		if c.Hop != "" {
			b.WriteString(" (hop " + c.Hop + ")")
		}
	}
	if c.Error != "" {
		b.WriteString(": " + c.Error)
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
