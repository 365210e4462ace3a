// Command hello is a sample jetworker container: one processor of every
// kind. The container tests build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm ./testdata/containers/hello
package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jetworker/jetworker/modules/container/guest"
)

// version is set at build time (-ldflags "-X main.version=2") so tests can
// tell two builds apart.
var version = "1"

func init() {
	// greet: a standalone processor; params "fail" fails, "panic" panics,
	// "sleep=1s" sleeps first.
	guest.Register("greet", guest.Definition{Process: func(t *guest.Task) guest.Result {
		switch t.InstanceParams {
		case "fail":
			return guest.Fail("asked to fail")
		case "panic":
			panic("asked to panic")
		}
		if d, ok := strings.CutPrefix(t.InstanceParams, "sleep="); ok {
			dur, err := time.ParseDuration(d)
			if err != nil {
				return guest.Fail(err.Error())
			}
			time.Sleep(dur)
		}
		t.Logf("hello from container v%s, params=%s", version, t.InstanceParams)
		t.Append("greeted", t.InstanceParams)
		return guest.OK("hello v" + version + " " + t.InstanceParams)
	}})
	// sum: map-reduce; the root maps N numbers (job params, default 10),
	// each sub-task returns its number, the reducer adds them up.
	guest.Register("sum", guest.Definition{
		Process: func(t *guest.Task) guest.Result {
			if t.IsRoot() {
				n, _ := strconv.Atoi(t.InstanceParams)
				if n <= 0 {
					n = 10
				}
				payloads := make([][]byte, n)
				for i := range payloads {
					payloads[i] = []byte(strconv.Itoa(i + 1))
				}
				if err := t.Map("number", payloads); err != nil {
					return guest.Fail("map: " + err.Error())
				}
				return guest.OK("mapped " + strconv.Itoa(n))
			}
			return guest.OK(string(t.Payload))
		},
		Reduce: func(t *guest.Task, results []guest.TaskResult) guest.Result {
			if t.FailedTasks > 0 {
				return guest.Fail(fmt.Sprintf("%d tasks failed", t.FailedTasks))
			}
			total := 0
			for _, r := range results {
				if r.TaskName == "number" {
					n, _ := strconv.Atoi(r.Message)
					total += n
				}
			}
			return guest.OK("sum=" + strconv.Itoa(total))
		},
	})
	// fanout: demo.fanout in a container (jetworker bench mapreduce
	// --container): the root maps N no-op sub-tasks (default 100,000) in
	// chunks of 1,000, the reducer counts those that succeeded.
	guest.Register("fanout", guest.Definition{
		Process: func(t *guest.Task) guest.Result {
			if !t.IsRoot() {
				return guest.OK("")
			}
			n, err := strconv.Atoi(t.InstanceParams)
			if err != nil || n < 1 {
				n = 100_000
			}
			batch := make([][]byte, 0, 1000)
			for i := 0; i < n; i += 1000 {
				batch = batch[:0]
				for v := i; v < min(i+1000, n); v++ {
					batch = append(batch, strconv.AppendInt(nil, int64(v), 10))
				}
				if err := t.Map("noop", batch); err != nil {
					return guest.Fail("map: " + err.Error())
				}
			}
			return guest.OK(fmt.Sprintf("mapped %d tasks", n))
		},
		Reduce: func(t *guest.Task, results []guest.TaskResult) guest.Result {
			ok := 0
			for _, r := range results {
				if r.TaskName == "noop" && r.Success {
					ok++
				}
			}
			return guest.OK(fmt.Sprintf("%d tasks", ok))
		},
	})
	// roll: a broadcast with pre- and post-processing.
	guest.Register("roll", guest.Definition{
		PreProcess: func(t *guest.Task) guest.Result { return guest.OK("ready") },
		Process:    func(t *guest.Task) guest.Result { return guest.OK("rolled") },
		PostProcess: func(t *guest.Task, results []guest.TaskResult) guest.Result {
			ok := 0
			for _, r := range results {
				if r.Success {
					ok++
				}
			}
			return guest.OK(fmt.Sprintf("%d of %d rolled", ok, len(results)))
		},
	})
	// misbehave: the sandbox tests. params "loop" spins forever, "alloc"
	// allocates without bound, "file" reads a host file, "exit" ends the
	// module.
	guest.Register("misbehave", guest.Definition{Process: func(t *guest.Task) guest.Result {
		switch t.InstanceParams {
		case "loop":
			for i := 0; ; i++ {
				_ = i
			}
		case "alloc":
			var keep [][]byte
			for {
				keep = append(keep, make([]byte, 1<<20))
			}
		case "file":
			b, err := os.ReadFile("/etc/hostname")
			if err != nil {
				return guest.Fail("read file: " + err.Error())
			}
			return guest.OK("read " + strings.TrimSpace(string(b)))
		case "exit":
			os.Exit(3)
		}
		return guest.OK("behaved")
	}})
}

func main() {}
