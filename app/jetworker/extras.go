package main

import (
	"os"

	"go.uber.org/fx"

	"github.com/jetworker/jetworker/app"
)

// workerExtras are the processors the stock binary's workers carry: the
// demo processors, so that `jetworker worker --app demo` can join a dev
// stack.
func workerExtras() []fx.Option { return nil }

func devOptions(appName string, workers int) app.DevOptions {
	return app.DevOptions{App: appName, Workers: workers, Out: os.Stdout}
}
