package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/jetworker/jetworker/modules/auth"
)

func authCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "auth", Short: "Per-app NATS credentials and permissions"}
	var apps, out, urls, hosts string
	var tls, ifNotExists bool
	initCmd := &cobra.Command{
		Use:   "init --apps A,B [--out DIR] [--tls]",
		Short: "Write a NATS auth configuration and one NKey identity per role and app",
		Long: `Writes into --out (default ./jetworker-auth):

  nats-auth.conf   NATS server users and permissions (jetworker nats --conf FILE)
  server.yaml      the identity of servers (everything)
  admin.yaml       an admin (everything: app create, trace, repairs)
  operator.yaml    operators: the servers' request subjects and reads, no store writes
  viewer.yaml      read-only operators
  worker-<app>.yaml  each app's workers: jw.<app>.… and their app's own stores only
  *.nk             the NKey seeds the .yaml files point at (keep them secret)

Use an identity with --config FILE (or its nkey_file with --nats-nkey or
JETWORKER_NATS_NKEY_FILE). With --tls, also a CA, a server certificate for
--hosts and a client certificate per identity; NATS then requires them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := auth.Init(auth.Options{Apps: splitList(apps), Dir: out, URLs: splitList(urls), TLS: tls, Hosts: splitList(hosts)})
			if errors.Is(err, auth.ErrExists) && ifNotExists {
				fmt.Printf("auth bundle in %s exists: kept\n", out)
				return nil
			}
			if errors.Is(err, auth.ErrExists) {
				return usagef("%v: choose another --out (running init again would replace keys in use)", err)
			}
			if err != nil {
				return usagef("%v", err)
			}
			fmt.Printf("wrote %s\n", b.NATSConfig)
			for _, id := range b.Identities {
				fmt.Printf("  %-20s %-8s %s\n", id.Name+".yaml", id.Role, id.Public)
			}
			fmt.Printf("start NATS with: jetworker nats --conf %s\n", b.NATSConfig)
			return nil
		},
	}
	f := initCmd.Flags()
	f.StringVar(&apps, "apps", "", "apps to give worker identities (required, comma separated)")
	f.StringVar(&out, "out", "jetworker-auth", "directory to write into (must not hold a bundle)")
	f.StringVar(&urls, "urls", "", "NATS URLs written into the identities' config files (default nats://127.0.0.1:4222, tls:// with --tls)")
	f.BoolVar(&tls, "tls", false, "also generate a CA and certificates; NATS then requires client certificates")
	f.StringVar(&hosts, "hosts", "", "names and IPs of the NATS server certificate (default localhost,127.0.0.1)")
	f.BoolVar(&ifNotExists, "if-not-exists", false, "succeed, writing nothing, when --out holds a bundle already")
	cmd.AddCommand(initCmd)
	return cmd
}
