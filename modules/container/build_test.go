package container_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// The sample containers are built from testdata/ with the Go toolchain
// once per test binary (no .wasm is committed).

var (
	buildMu sync.Mutex
	built   = map[string][]byte{}
	buildTo string
)

// sample builds testdata/containers/NAME (with -X main.version=version
// when version is not "") and returns the module.
func sample(tb testing.TB, name, version string) []byte {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	key := name + "@" + version
	if b, ok := built[key]; ok {
		return b
	}
	if buildTo == "" {
		dir, err := os.MkdirTemp("", "jw-containers-")
		if err != nil {
			tb.Fatal(err)
		}
		buildTo = dir
	}
	out := filepath.Join(buildTo, name+"-"+version+".wasm")
	args := []string{"build", "-buildmode=c-shared", "-o", out}
	if version != "" {
		args = append(args, "-ldflags", "-X main.version="+version)
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	args = append(args, "./testdata/containers/"+name)
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("build container %s: %v\n%s", name, err, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		tb.Fatal(err)
	}
	built[key] = b
	return b
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildTo != "" {
		_ = os.RemoveAll(buildTo)
	}
	os.Exit(code)
}
