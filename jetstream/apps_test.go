package jetstream_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	jwjs "github.com/jetworker/jetworker/jetstream"
	"github.com/jetworker/jetworker/subjects"
)

func TestApps_CreateGetList(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	apps, err := jwjs.OpenApps(ctx, setupJS(t), 1)
	require.NoError(t, err)

	list, err := apps.List(ctx)
	require.NoError(t, err)
	require.Empty(t, list)

	zeta, err := apps.Create(ctx, "zeta", 1000)
	require.NoError(t, err)
	require.Equal(t, "zeta", zeta.Name)
	require.Positive(t, zeta.ID)
	require.EqualValues(t, 1000, zeta.CreatedMS)

	alpha, err := apps.Create(ctx, "alpha", 2000)
	require.NoError(t, err)
	require.Greater(t, alpha.ID, zeta.ID, "ids increase with creation")

	_, err = apps.Create(ctx, "zeta", 3000)
	require.ErrorIs(t, err, jwjs.ErrExists)

	got, err := apps.Get(ctx, "zeta")
	require.NoError(t, err)
	require.Equal(t, zeta, got, "a duplicate create must not change the app")

	_, err = apps.Get(ctx, "nope")
	require.ErrorIs(t, err, jwjs.ErrNotFound)

	mid, err := apps.Create(ctx, "mid", 4000)
	require.NoError(t, err)
	list, err = apps.List(ctx)
	require.NoError(t, err)
	require.Equal(t, []jwjs.App{alpha, mid, zeta}, list)
}

func TestApps_CreateRejectsBadNames(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	apps, err := jwjs.OpenApps(ctx, setupJS(t), 1)
	require.NoError(t, err)
	for _, name := range []string{"", "a.b", "a b", "a*", "a>"} {
		_, err := apps.Create(ctx, name, 1)
		require.ErrorIs(t, err, subjects.ErrBadToken, "name %q", name)
	}
	list, err := apps.List(ctx)
	require.NoError(t, err)
	require.Empty(t, list)
}

func TestApps_OpenTwiceSharesTheBucket(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	js := setupJS(t)
	a1, err := jwjs.OpenApps(ctx, js, 1)
	require.NoError(t, err)
	a2, err := jwjs.OpenApps(ctx, js, 1)
	require.NoError(t, err)
	created, err := a1.Create(ctx, "demo", 1)
	require.NoError(t, err)
	got, err := a2.Get(ctx, "demo")
	require.NoError(t, err)
	require.Equal(t, created, got)
}
