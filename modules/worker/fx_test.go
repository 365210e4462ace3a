package worker

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/fx"
	"go.uber.org/fx/fxtest"

	"github.com/jetworker/jetworker/modules/health"
	"github.com/jetworker/jetworker/modules/natsconn"
)

func TestModuleStartsAndStops(t *testing.T) {
	t.Parallel()
	e := setup(t)
	var w *Worker
	app := fxtest.New(t,
		fx.Supply(testConfig("demo"), e.log),
		fx.Provide(func() *natsconn.Conn { return e.conn }),
		Module,
		fx.Populate(&w),
	)
	app.RequireStart()
	require.Equal(t, startOrder, w.Started())
	app.RequireStop()
	require.Empty(t, w.Started())
}

type constCollector struct{ name string }

func (c constCollector) Name() string                             { return c.name }
func (c constCollector) Collect(context.Context) (float64, error) { return 1, nil }

func TestModuleCollectors(t *testing.T) {
	t.Parallel()
	e := setup(t)
	supply := fx.Options(
		fx.Supply(testConfig("demo"), e.log),
		fx.Provide(func() *natsconn.Conn { return e.conn }),
		Module,
		fx.NopLogger,
	)

	// A registered collector reaches the heartbeat.
	var w *Worker
	app := fxtest.New(t, supply,
		AsCollector(func() constCollector { return constCollector{"queue_depth"} }),
		fx.Populate(&w))
	app.RequireStart()
	require.Equal(t, 1.0, w.Health.Last().Custom["queue_depth"])
	app.RequireStop()

	// Two collectors with one name are rejected before anything starts.
	bad := fx.New(supply,
		AsCollector(func() constCollector { return constCollector{"dup"} }),
		AsCollector(func() constCollector { return constCollector{"dup"} }),
		fx.Invoke(func(*Worker) {}))
	require.ErrorIs(t, bad.Err(), health.ErrDuplicateCollector)
}
