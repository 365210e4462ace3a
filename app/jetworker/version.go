package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// BuildVersion is set at link time (-ldflags "-X main.BuildVersion=v1.2.3");
// when empty, buildVersion reads the module version or VCS revision the Go
// toolchain recorded.
var BuildVersion string

func buildVersion() string {
	if BuildVersion != "" {
		return BuildVersion
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(devel)"
	}
	v := bi.Main.Version
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		return "(devel) " + rev + dirty
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the jetworker version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			goVersion := runtime.Version()
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "jetworker %s (%s %s/%s)\n", buildVersion(), goVersion, runtime.GOOS, runtime.GOARCH)
			return err
		},
	}
}
