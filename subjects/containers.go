package subjects

import (
	"fmt"
	"net/url"
	"strings"
)

// Containers (PROTOCOL.md §10): WebAssembly processors pushed to the
// server and deployed to an app's workers at run time.

// ProcessorTypeWasm is the processor type of a container processor, whose
// processor is "<container>#<processor>".
const ProcessorTypeWasm = "wasm"

// SplitContainerProcessor splits "<container>#<processor>".
func SplitContainerProcessor(s string) (container, processor string, err error) {
	container, processor, ok := strings.Cut(s, "#")
	if !ok || processor == "" {
		return "", "", fmt.Errorf("%q is not <container>#<processor>", s)
	}
	if err := ValidToken(container); err != nil {
		return "", "", fmt.Errorf("container: %w", err)
	}
	return container, processor, nil
}

// Container operations (ContainerRequest.Op).
const (
	ContainerPush     = "push"     // record a version (stored in the object store, or at URL)
	ContainerDeploy   = "deploy"   // make Version (default: the newest) current on every worker
	ContainerRollback = "rollback" // make the previous version current again
	ContainerDestroy  = "destroy"  // remove it everywhere
	ContainerList     = "list"     // every container of the app, with each worker's loaded versions
	ContainerGet      = "get"      // one container (its versions)
)

// MaxContainerURL bounds a container URL.
const MaxContainerURL = 2048

// ContainerRequest is a client's request to the app's owner
// (ServerVerb(app, owner, VerbContainer)).
type ContainerRequest struct {
	Proto
	App     string `msgpack:"app"`
	Op      string `msgpack:"op"`
	Name    string `msgpack:"name"`
	Version string `msgpack:"version"` // hex md5
	URL     string `msgpack:"url"`     // push: fetch from here instead of the object store
	By      string `msgpack:"by"`      // push: who pushed (free text)
}

// Validate checks the fields the operation needs.
func (m *ContainerRequest) Validate() error {
	if err := ValidToken(m.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	switch m.Op {
	case ContainerList:
		return nil
	case ContainerPush, ContainerDeploy, ContainerRollback, ContainerDestroy, ContainerGet:
	default:
		return fmt.Errorf("op: %q is not push, deploy, rollback, destroy, list or get", m.Op)
	}
	if err := ValidToken(m.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if (m.Op == ContainerPush || m.Version != "") && !IsMD5(m.Version) {
		return fmt.Errorf("version: %q is not a hex md5", m.Version)
	}
	if m.URL != "" {
		if err := ValidContainerURL(m.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	}
	return nil
}

// ValidContainerURL accepts absolute http and https URLs only.
func ValidContainerURL(s string) error {
	if len(s) > MaxContainerURL {
		return fmt.Errorf("longer than %d bytes", MaxContainerURL)
	}
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", s)
	}
	return nil
}

// IsMD5 reports whether s is 32 lowercase hex digits.
func IsMD5(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ContainerVersionInfo is one pushed version.
type ContainerVersionInfo struct {
	Version    string   `msgpack:"version"`
	Size       int64    `msgpack:"size"`
	URL        string   `msgpack:"url"`
	By         string   `msgpack:"by"`
	PushedMS   int64    `msgpack:"pushed_ms"` // the owner's clock
	Processors []string `msgpack:"processors"`
}

// ContainerState is a container as the registry holds it.
type ContainerState struct {
	Name     string                 `msgpack:"name"`
	Current  string                 `msgpack:"current"`
	Previous string                 `msgpack:"previous"`
	Versions []ContainerVersionInfo `msgpack:"versions"` // oldest first
}

// WorkerContainers is what one live worker reports it has loaded.
type WorkerContainers struct {
	WorkerID   string          `msgpack:"worker_id"`
	Containers []ContainerInfo `msgpack:"containers"`
}

// ContainerReply answers a ContainerRequest.
type ContainerReply struct {
	Proto
	Containers []ContainerState   `msgpack:"containers"`
	Workers    []WorkerContainers `msgpack:"workers"` // list: every live worker of the app
}

// Validate accepts anything.
func (m *ContainerReply) Validate() error { return nil }

// DeployContainer tells workers to load a container's version, or to
// drop the container (Destroy). The owner publishes it on
// WorkersBroadcast(app, MailboxDeployContainer); a worker that misses it
// catches up from the registry when it starts or first uses the
// container.
type DeployContainer struct {
	Proto
	App     string `msgpack:"app"`
	Name    string `msgpack:"name"`
	Version string `msgpack:"version"`
	URL     string `msgpack:"url"` // "" = the object store
	Destroy bool   `msgpack:"destroy"`
}

// Validate checks the names and the version.
func (m *DeployContainer) Validate() error {
	if err := ValidToken(m.App); err != nil {
		return fmt.Errorf("app: %w", err)
	}
	if err := ValidToken(m.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if !m.Destroy && !IsMD5(m.Version) {
		return fmt.Errorf("version: %q is not a hex md5", m.Version)
	}
	if m.URL != "" {
		if err := ValidContainerURL(m.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	}
	return nil
}
