package natsconn

import (
	"errors"
	"fmt"
	"time"
)

// Config says how a process reaches NATS: an embedded server (the default,
// when URLs is empty) or external servers.
type Config struct {
	// URLs of external NATS servers. Empty means: start an embedded server.
	URLs []string `yaml:"urls"`
	// Name is the client connection name shown in NATS monitoring.
	Name string `yaml:"name"`

	// Authentication for external servers; at most one of user/password,
	// token, NKey seed file and creds file.
	User      string `yaml:"user"`
	Password  string `yaml:"password"`
	Token     string `yaml:"token"`
	NKeyFile  string `yaml:"nkey_file"`  // NKey seed file
	CredsFile string `yaml:"creds_file"` // JWT + seed .creds file
	TLS       TLS    `yaml:"tls"`

	// ReconnectWait is the base delay between reconnect attempts (zero means
	// 2s); jitter is added. Reconnects never give up.
	ReconnectWait time.Duration `yaml:"reconnect_wait"`
	// ConnectTimeout bounds the first connect (zero means 5s).
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// NoReconnectBuffer makes publishes fail while disconnected instead
	// of being sent on reconnect (set for servers by their assembly: a
	// deposed owner's write must not land late).
	NoReconnectBuffer bool `yaml:"-"`

	Embedded Embedded `yaml:"embedded"`
}

// TLS configures a TLS connection to external servers.
type TLS struct {
	CA   string `yaml:"ca"`   // CA bundle that signed the server certificate
	Cert string `yaml:"cert"` // client certificate (mutual TLS)
	Key  string `yaml:"key"`  // client key
}

// Embedded configures the in-process NATS server.
type Embedded struct {
	// Host and Port to listen on for other processes. Port 0 means the NATS
	// default 4222; -1 picks a random free port. DontListen serves only
	// this process.
	Host       string `yaml:"host"`
	Port       int    `yaml:"port"`
	DontListen bool   `yaml:"dont_listen"`
	// StoreDir holds JetStream files. Empty means a fresh temporary
	// directory removed at stop (dev mode).
	StoreDir   string `yaml:"store_dir"`
	ServerName string `yaml:"server_name"`
	// MaxMemory and MaxStore cap JetStream (zero: NATS defaults).
	MaxMemory int64 `yaml:"max_memory"`
	MaxStore  int64 `yaml:"max_store"`
	// Cluster makes the node a member of a NATS cluster (jetworker nats).
	Cluster Cluster `yaml:"cluster"`
	// HTTPPort enables the NATS monitoring endpoint (0: off).
	HTTPPort int `yaml:"http_port"`
	// Debug routes the server's debug lines to the logger.
	Debug bool `yaml:"debug"`
	// ConfigFile is a NATS server configuration whose authorization
	// (users, NKeys, permissions) and TLS settings the node takes, such
	// as the one `jetworker auth init` writes. Listening, JetStream and
	// cluster settings come from the fields above, not from it.
	ConfigFile string `yaml:"config_file"`
}

// Cluster configures routes between embedded nodes.
type Cluster struct {
	Name   string   `yaml:"name"`
	Host   string   `yaml:"host"`
	Port   int      `yaml:"port"`
	Routes []string `yaml:"routes"` // nats-route://host:port
}

// Default returns the defaults described on each field.
func Default() Config {
	return Config{
		Name:           "jetworker",
		ReconnectWait:  2 * time.Second,
		ConnectTimeout: 5 * time.Second,
		Embedded:       Embedded{Host: "127.0.0.1"},
	}
}

// IsEmbedded reports whether this config starts an embedded server.
func (c Config) IsEmbedded() bool { return len(c.URLs) == 0 }

// Validate checks the config; messages name the field.
func (c Config) Validate() error {
	var errs []error
	auth := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.NKeyFile != "", c.CredsFile != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		errs = append(errs, errors.New("nats: set only one of user/password, token, nkey_file, creds_file"))
	}
	if c.Password != "" && c.User == "" {
		errs = append(errs, errors.New("nats.user: required when nats.password is set"))
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		errs = append(errs, errors.New("nats.tls: cert and key go together"))
	}
	if c.ReconnectWait < 0 {
		errs = append(errs, fmt.Errorf("nats.reconnect_wait: %s is negative", c.ReconnectWait))
	}
	if p := c.Embedded.Port; p < -1 || p > 65535 {
		errs = append(errs, fmt.Errorf("nats.embedded.port: %d is out of range", p))
	}
	if c.Embedded.Cluster.Port != 0 && c.Embedded.Cluster.Name == "" {
		errs = append(errs, errors.New("nats.embedded.cluster.name: required when a cluster port is set"))
	}
	return errors.Join(errs...)
}
