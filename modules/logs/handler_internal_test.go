package logs

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/subjects"
)

// A full default batch of maximum-length lines is over the message limit;
// it must go out as several messages, each encodable, losing nothing.
func TestSplitBySizeKeepsBatchesEncodable(t *testing.T) {
	d := Default()
	lines := make([]subjects.LogLine, d.BatchSize)
	for i := range lines {
		lines[i] = subjects.LogLine{Seq: uint64(i), Message: strings.Repeat("x", d.MaxLineBytes)}
	}
	parts := splitBySize(lines, maxBatchBytes)
	require.Greater(t, len(parts), 1)
	n := 0
	for _, p := range parts {
		_, err := subjects.Marshal(&subjects.LogBatch{InstanceID: "i", Lines: p})
		require.NoError(t, err)
		for _, l := range p {
			require.Equal(t, uint64(n), l.Seq)
			n++
		}
	}
	require.Equal(t, len(lines), n)
}
