package auth

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nats-io/nkeys"

	"github.com/jetworker/jetworker/subjects"
)

// Options say what Init writes.
type Options struct {
	// Apps get a worker identity each ("worker-<app>"). Required.
	Apps []string
	// Dir receives the files (created 0700 when missing).
	Dir string
	// URLs are the NATS URLs written into each identity's config file
	// (default nats://127.0.0.1:4222; tls:// when TLS is set).
	URLs []string
	// TLS also writes a CA, a server certificate for Hosts and a client
	// certificate per identity, and makes the NATS configuration require
	// and verify client certificates.
	TLS bool
	// Hosts are the names and addresses the NATS server certificate is
	// valid for (default localhost and 127.0.0.1).
	Hosts []string
}

// Identity is one generated identity.
type Identity struct {
	Name   string // file stem: server, admin, operator, viewer, worker-<app>
	Role   Role
	App    string // for RoleWorker
	Public string // NKey public key (the NATS user)
	seed   []byte
}

// Bundle is what Init wrote.
type Bundle struct {
	Dir        string
	NATSConfig string // path of the NATS server configuration
	Identities []Identity
}

// Files of a bundle.
const (
	NATSConfigFile = "nats-auth.conf"
	caFile         = "ca.pem"
)

// ErrExists is returned when Dir holds a bundle already (Init never
// overwrites keys: running it again would lock out every process using
// the old ones).
var ErrExists = errors.New("auth: a bundle exists in the directory already")

// Init generates the identities of opts, writes their NKey seeds (0600),
// a jetworker config file per identity (<name>.yaml: NATS URLs, seed,
// TLS files) and the NATS server configuration (nats-auth.conf), and
// returns what it wrote.
func Init(opts Options) (*Bundle, error) {
	if len(opts.Apps) == 0 {
		return nil, errors.New("auth: --apps: at least one app")
	}
	seen := map[string]bool{}
	for _, a := range opts.Apps {
		if err := subjects.ValidToken(a); err != nil {
			return nil, fmt.Errorf("auth: app %q: %w", a, err)
		}
		if seen[a] {
			return nil, fmt.Errorf("auth: app %q given twice", a)
		}
		seen[a] = true
	}
	if opts.Dir == "" {
		return nil, errors.New("auth: --out: a directory is required")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if _, err := os.Stat(filepath.Join(opts.Dir, NATSConfigFile)); err == nil {
		return nil, fmt.Errorf("%w: %s", ErrExists, filepath.Join(opts.Dir, NATSConfigFile))
	}
	ids := []Identity{{Name: "server", Role: RoleServer}, {Name: "admin", Role: RoleAdmin},
		{Name: "operator", Role: RoleOperator}, {Name: "viewer", Role: RoleViewer}}
	apps := append([]string(nil), opts.Apps...)
	sort.Strings(apps)
	for _, a := range apps {
		ids = append(ids, Identity{Name: "worker-" + a, Role: RoleWorker, App: a})
	}
	for i := range ids {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return nil, fmt.Errorf("auth: nkey: %w", err)
		}
		if ids[i].seed, err = kp.Seed(); err != nil {
			return nil, fmt.Errorf("auth: nkey: %w", err)
		}
		if ids[i].Public, err = kp.PublicKey(); err != nil {
			return nil, fmt.Errorf("auth: nkey: %w", err)
		}
	}
	b := &Bundle{Dir: opts.Dir, NATSConfig: filepath.Join(opts.Dir, NATSConfigFile), Identities: ids}
	var tlsFiles *tlsBundle
	if opts.TLS {
		var err error
		if tlsFiles, err = writeTLS(opts.Dir, opts.Hosts, ids); err != nil {
			return nil, err
		}
	}
	urls := opts.URLs
	if len(urls) == 0 {
		urls = []string{"nats://127.0.0.1:4222"}
		if opts.TLS {
			urls = []string{"tls://127.0.0.1:4222"}
		}
	}
	for _, id := range ids {
		seedPath := filepath.Join(opts.Dir, id.Name+".nk")
		if err := os.WriteFile(seedPath, append(id.seed, '\n'), 0o600); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		if err := os.WriteFile(filepath.Join(opts.Dir, id.Name+".yaml"), []byte(identityConfig(id, seedPath, urls, tlsFiles)), 0o600); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	routePassword, err := randomSecret()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(b.NATSConfig, []byte(natsConfig(ids, tlsFiles, routePassword)), 0o600); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return b, nil
}

// identityConfig is the jetworker config file of one identity.
func identityConfig(id Identity, seed string, urls []string, t *tlsBundle) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# jetworker identity %q (role %s", id.Name, id.Role)
	if id.App != "" {
		fmt.Fprintf(&b, ", app %s", id.App)
	}
	fmt.Fprintf(&b, "), NKey %s\n", id.Public)
	b.WriteString("nats:\n  urls:\n")
	for _, u := range urls {
		fmt.Fprintf(&b, "    - %s\n", u)
	}
	fmt.Fprintf(&b, "  nkey_file: %s\n", quote(seed))
	if t != nil {
		fmt.Fprintf(&b, "  tls:\n    ca: %s\n    cert: %s\n    key: %s\n", quote(t.ca), quote(t.certs[id.Name]), quote(t.keys[id.Name]))
	}
	if id.Role == RoleWorker {
		fmt.Fprintf(&b, "worker:\n  app: %s\n", id.App)
	}
	return b.String()
}

// natsConfig is the NATS server configuration: one user per identity
// (by NKey) with its permissions, and TLS when t is set.
func natsConfig(ids []Identity, t *tlsBundle, routePassword string) string {
	var b strings.Builder
	b.WriteString("# Generated by `jetworker auth init`. Load with `jetworker nats --conf <this file>`\n")
	b.WriteString("# (or include it in a nats-server configuration).\n")
	if t != nil {
		fmt.Fprintf(&b, "tls {\n  cert_file: %s\n  key_file: %s\n  ca_file: %s\n  verify: true\n  timeout: 5\n}\n",
			quote(t.serverCert), quote(t.serverKey), quote(t.ca))
	}
	// Routes between the nodes of a cluster authenticate too (jetworker
	// nats adds these credentials to the routes it dials).
	fmt.Fprintf(&b, "cluster {\n  authorization {\n    user: \"route\"\n    password: %s\n  }\n}\n", quote(routePassword))
	b.WriteString("authorization {\n  users: [\n")
	for _, id := range ids {
		p := For(id.Role, id.App, InboxPrefix(id.Public))
		fmt.Fprintf(&b, "    # %s\n    {\n      nkey: %s\n      permissions: {\n", id.Name, id.Public)
		fmt.Fprintf(&b, "        publish: { allow: %s", list(p.PubAllow))
		if len(p.PubDeny) > 0 {
			fmt.Fprintf(&b, ", deny: %s", list(p.PubDeny))
		}
		b.WriteString(" }\n")
		fmt.Fprintf(&b, "        subscribe: { allow: %s }\n", list(p.SubAllow))
		if p.AllowResponses {
			b.WriteString("        allow_responses: true\n")
		}
		b.WriteString("      }\n    }\n")
	}
	b.WriteString("  ]\n}\n")
	return b.String()
}

func list(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// quote writes s as a double-quoted NATS/YAML string.
func quote(s string) string { return fmt.Sprintf("%q", s) }

// randomSecret is 32 random bytes, hex.
func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: %w", err)
	}
	return hex.EncodeToString(b), nil
}
