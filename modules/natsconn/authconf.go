package natsconn

import (
	"fmt"
	"net/url"

	"github.com/nats-io/nats-server/v2/server"
)

// applyConfigFile copies the authorization and TLS settings of a NATS
// server configuration file into opts.
func applyConfigFile(opts *server.Options, path string) error {
	f, err := server.ProcessConfigFile(path)
	if err != nil {
		return fmt.Errorf("embedded nats: config %s: %w", path, err)
	}
	opts.Users, opts.Nkeys = f.Users, f.Nkeys
	opts.Username, opts.Password, opts.Authorization = f.Username, f.Password, f.Authorization
	opts.NoAuthUser, opts.AuthTimeout = f.NoAuthUser, f.AuthTimeout
	opts.TLS, opts.TLSVerify, opts.TLSMap, opts.TLSTimeout = f.TLS, f.TLSVerify, f.TLSMap, f.TLSTimeout
	opts.TLSConfig, opts.TLSCert, opts.TLSKey, opts.TLSCaCert = f.TLSConfig, f.TLSCert, f.TLSKey, f.TLSCaCert
	// Routes: the cluster's user and password (auth init writes them),
	// which this node also presents to the routes it dials.
	if u := f.Cluster.Username; u != "" {
		opts.Cluster.Username, opts.Cluster.Password = u, f.Cluster.Password
		for i, r := range opts.Routes {
			if r.User == nil {
				c := *r
				c.User = url.UserPassword(u, f.Cluster.Password)
				opts.Routes[i] = &c
			}
		}
	}
	if len(opts.Users)+len(opts.Nkeys) == 0 && opts.Authorization == "" && opts.Username == "" && opts.TLSConfig == nil {
		return fmt.Errorf("embedded nats: config %s: no authorization or tls block", path)
	}
	return nil
}
