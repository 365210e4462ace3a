package main

import (
	"io/fs"
	"path"
	"strings"

	"github.com/jetworker/jetworker/modules/container/guest"
)

// scaffold is a new container project: go.mod, main.go with a processor
// of every kind, and a copy of the guest package (no dependency to fetch).
func scaffold(name string) map[string]string {
	files := map[string]string{
		"go.mod": "module " + name + "\n\ngo 1.24\n",
		"main.go": strings.ReplaceAll(`// Command NAME is a jetworker container. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm .
//
// push and deploy it with
//
//	jetworker container push --app APP --name NAME NAME.wasm --deploy --wait
//
// and run its processors as NAME#greet, NAME#sum (map_reduce) or
// NAME#each (broadcast) with processor type wasm.
package main

import (
	"fmt"
	"strconv"

	"NAME/guest"
)

func init() {
	// A standalone processor: logs a line, returns a result.
	guest.Register("greet", guest.Definition{Process: func(t *guest.Task) guest.Result {
		t.Logf("hello, %s", t.InstanceParams)
		return guest.OK("hello " + t.InstanceParams)
	}})

	// A map-reduce processor: the root task maps the numbers 1..N (N from
	// the instance params), each sub-task returns its number, the
	// reducer adds them up.
	guest.Register("sum", guest.Definition{
		Process: func(t *guest.Task) guest.Result {
			if t.IsRoot() {
				n, _ := strconv.Atoi(t.InstanceParams)
				payloads := make([][]byte, n)
				for i := range payloads {
					payloads[i] = []byte(strconv.Itoa(i + 1))
				}
				if err := t.Map("number", payloads); err != nil {
					return guest.Fail(err.Error())
				}
				return guest.OK("mapped")
			}
			return guest.OK(string(t.Payload))
		},
		Reduce: func(t *guest.Task, results []guest.TaskResult) guest.Result {
			total := 0
			for _, r := range results {
				if r.TaskName == "number" {
					n, _ := strconv.Atoi(r.Message)
					total += n
				}
			}
			return guest.OK(strconv.Itoa(total))
		},
	})

	// A broadcast processor: runs once on every worker, then the
	// post-processor sums up.
	guest.Register("each", guest.Definition{
		Process: func(t *guest.Task) guest.Result { return guest.OK("done") },
		PostProcess: func(t *guest.Task, results []guest.TaskResult) guest.Result {
			return guest.OK(fmt.Sprintf("%d workers", len(results)))
		},
	})
}

func main() {}
`, "NAME", name),
	}
	_ = fs.WalkDir(guest.Sources, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := guest.Sources.ReadFile(p)
		if err != nil {
			return err
		}
		files[path.Join("guest", p)] = string(b)
		return nil
	})
	return files
}
