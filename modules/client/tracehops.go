package client

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/jetworker/jetworker/modules/rpc"
	"github.com/jetworker/jetworker/subjects"
)

// NATS message tracing (nats-server 2.11+): a message published with the
// header Nats-Trace-Dest makes every server it crosses publish a JSON
// event to that subject, describing where it came in and where it went.
const (
	headerTraceDest = "Nats-Trace-Dest"
	headerTraceHop  = "Nats-Trace-Hop"
)

// RunWithHeaders is Run sending the run request with extra NATS headers
// (rpc.WithHeaders): every try carries them beside the ones every message
// has, which they do not replace. Errors are Run's.
func (c *Client) RunWithHeaders(ctx context.Context, app string, job subjects.JobSpec, params string, hdr nats.Header) (*subjects.RunJobReply, error) {
	run := func(subject string) bool { return strings.HasSuffix(subject, "."+subjects.VerbRunJob) }
	return c.Run(rpc.WithHeaders(ctx, hdr, run), app, job, params)
}

// RunTraced is Run with NATS message tracing of the run request: the
// servers it crosses report their hops to a private inbox, collected until
// every announced hop has reported or wait has passed since the reply
// (zero means 2s). The trace is returned with the reply; it is empty when
// the servers do not trace (before nats-server 2.11) and partial when some
// hop did not report in time (MsgTrace.Missing). When the request was
// asked again (the app moved), the hops of every try are in it.
func (c *Client) RunTraced(ctx context.Context, app string, job subjects.JobSpec, params string, wait time.Duration) (*subjects.RunJobReply, *MsgTrace, error) {
	if wait <= 0 {
		wait = 2 * time.Second
	}
	col := &traceCollector{changed: make(chan struct{}, 1)}
	dest := c.nc.NewInbox()
	sub, err := c.nc.Subscribe(dest, col.add)
	if err != nil {
		return nil, nil, fmt.Errorf("trace: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	reply, err := c.RunWithHeaders(ctx, app, job, params, nats.Header{headerTraceDest: []string{dest}})
	if err != nil {
		return nil, nil, err
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for !col.complete() {
		select {
		case <-col.changed:
		case <-timer.C:
			return reply, col.trace(), nil
		case <-ctx.Done():
			return reply, col.trace(), nil
		}
	}
	return reply, col.trace(), nil
}

// MsgTrace is what the NATS servers reported about one traced message.
type MsgTrace struct {
	// Hops has one entry per server the message crossed, in hop order
	// (the server it entered first, then "1", "1.1", "2"…).
	Hops []ServerHop
	// Missing lists hops announced by an egress whose server did not
	// report in time.
	Missing []string
	// Undecodable counts events that did not decode.
	Undecodable int
}

// ServerHop is one server's report: where the message came in and where
// it went.
type ServerHop struct {
	Server  string // server name
	Cluster string
	Hop     string // "" on the server the client published to
	In      Conn
	Out     []Conn
	Stream  string // the JetStream stream that stored it, if any
}

// Conn is one side of a hop: a client connection (name, subscription) or
// a route, gateway or leaf node connection to another server.
type Conn struct {
	Kind    string // client, route, gateway, leaf, system, jetstream, account
	Name    string // the client connection's name, or the remote server's
	Subject string // ingress: the subject published; client egress: the subscription
	Queue   string // client egress: the queue group
	Hop     string // route, gateway or leaf egress: the hop the next server reports as
	Error   string // why it was not delivered (or not traced) there
}

// traceCollector gathers trace events; its methods are safe for
// concurrent use (add runs on the subscription's goroutine).
type traceCollector struct {
	mu          sync.Mutex
	hops        []ServerHop
	undecodable int
	changed     chan struct{}
}

// msgTraceEvent is the subset of nats-server's MsgTraceEvent read here
// (server/msgtrace.go), decoded without depending on the server module.
type msgTraceEvent struct {
	Server struct {
		Name    string `json:"name"`
		Cluster string `json:"cluster"`
	} `json:"server"`
	Request struct {
		Header map[string][]string `json:"header"`
	} `json:"request"`
	Events []struct {
		Type    string `json:"type"` // in, eg, js, sm, se, si
		Kind    int    `json:"kind"`
		Name    string `json:"name"`
		Subject string `json:"subj"`
		Sub     string `json:"sub"`
		Queue   string `json:"queue"`
		Hop     string `json:"hop"`
		Stream  string `json:"stream"`
		Error   string `json:"error"`
	} `json:"events"`
}

// connKinds are nats-server's connection kinds (server.CLIENT…).
var connKinds = []string{"client", "route", "gateway", "system", "leaf", "jetstream", "account"}

func connKind(k int) string {
	if k >= 0 && k < len(connKinds) {
		return connKinds[k]
	}
	return fmt.Sprintf("kind-%d", k)
}

func (col *traceCollector) add(m *nats.Msg) {
	var e msgTraceEvent
	col.mu.Lock()
	defer col.mu.Unlock()
	if err := json.Unmarshal(m.Data, &e); err != nil {
		col.undecodable++
		return
	}
	h := ServerHop{Server: e.Server.Name, Cluster: e.Server.Cluster}
	for k, v := range e.Request.Header {
		if strings.EqualFold(k, headerTraceHop) && len(v) > 0 {
			h.Hop = v[0]
		}
	}
	for _, ev := range e.Events {
		switch ev.Type {
		case "in":
			h.In = Conn{Kind: connKind(ev.Kind), Name: ev.Name, Subject: ev.Subject, Error: ev.Error}
		case "eg":
			h.Out = append(h.Out, Conn{Kind: connKind(ev.Kind), Name: ev.Name, Subject: ev.Sub, Queue: ev.Queue, Hop: ev.Hop, Error: ev.Error})
		case "js":
			h.Stream = ev.Stream
		}
	}
	col.hops = append(col.hops, h)
	select {
	case col.changed <- struct{}{}:
	default:
	}
}

// missing returns the hops announced but not reported, and whether the
// first server has reported. Caller holds mu.
func (col *traceCollector) missing() ([]string, bool) {
	seen := map[string]bool{}
	for _, h := range col.hops {
		seen[h.Hop] = true
	}
	var out []string
	for _, h := range col.hops {
		for _, o := range h.Out {
			// An egress to a server that does not trace says so in Error.
			if o.Hop != "" && o.Error == "" && !seen[o.Hop] {
				out = append(out, o.Hop)
			}
		}
	}
	return out, seen[""]
}

func (col *traceCollector) complete() bool {
	col.mu.Lock()
	defer col.mu.Unlock()
	miss, root := col.missing()
	return root && len(miss) == 0
}

// trace returns what was collected, hops in hop order.
func (col *traceCollector) trace() *MsgTrace {
	col.mu.Lock()
	defer col.mu.Unlock()
	t := &MsgTrace{Hops: append([]ServerHop(nil), col.hops...), Undecodable: col.undecodable}
	t.Missing, _ = col.missing()
	sort.SliceStable(t.Hops, func(i, j int) bool { return hopLess(t.Hops[i].Hop, t.Hops[j].Hop) })
	return t
}

// hopLess orders hop ids: "" first, then "1" < "1.1" < "1.2" < "2" <
// "10", comparing numerically part by part.
func hopLess(a, b string) bool {
	if a == "" || b == "" {
		return a == "" && b != ""
	}
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			if len(pa[i]) != len(pb[i]) {
				return len(pa[i]) < len(pb[i])
			}
			return pa[i] < pb[i]
		}
	}
	return len(pa) < len(pb)
}
