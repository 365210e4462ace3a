package subjects_test

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jetworker/jetworker/subjects"
)

// Run one target at a time, e.g.
//
//	go test ./subjects -run '^$' -fuzz '^FuzzHeartbeat$' -fuzztime 10s
//
// A failing input is written to subjects/testdata/fuzz/<target>/; keep it
// only once the bug it found is fixed, as a regression seed.

func FuzzAssertRequest(f *testing.F)  { fuzzDecoder[subjects.AssertRequest](f) }
func FuzzAssertReply(f *testing.F)    { fuzzDecoder[subjects.AssertReply](f) }
func FuzzAcquireRequest(f *testing.F) { fuzzDecoder[subjects.AcquireRequest](f) }
func FuzzAcquireReply(f *testing.F)   { fuzzDecoder[subjects.AcquireReply](f) }
func FuzzHeartbeat(f *testing.F)      { fuzzDecoder[subjects.Heartbeat](f) }
func FuzzLogBatch(f *testing.F)       { fuzzDecoder[subjects.LogBatch](f) }
func FuzzError(f *testing.F)          { fuzzDecoder[subjects.Error](f) }

func FuzzRunInstance(f *testing.F)      { fuzzDecoder[subjects.RunInstance](f) }
func FuzzRunReply(f *testing.F)         { fuzzDecoder[subjects.RunReply](f) }
func FuzzStopInstance(f *testing.F)     { fuzzDecoder[subjects.StopInstance](f) }
func FuzzActiveQuery(f *testing.F)      { fuzzDecoder[subjects.ActiveQuery](f) }
func FuzzActivePage(f *testing.F)       { fuzzDecoder[subjects.ActivePage](f) }
func FuzzAck(f *testing.F)              { fuzzDecoder[subjects.Ack](f) }
func FuzzQueryInstance(f *testing.F)    { fuzzDecoder[subjects.QueryInstance](f) }
func FuzzInstanceDetail(f *testing.F)   { fuzzDecoder[subjects.InstanceDetail](f) }
func FuzzInstanceStatus(f *testing.F)   { fuzzDecoder[subjects.InstanceStatus](f) }
func FuzzStartTasks(f *testing.F)       { fuzzDecoder[subjects.StartTasks](f) }
func FuzzStartTasksReply(f *testing.F)  { fuzzDecoder[subjects.StartTasksReply](f) }
func FuzzTaskReports(f *testing.F)      { fuzzDecoder[subjects.TaskReports](f) }
func FuzzMapRequest(f *testing.F)       { fuzzDecoder[subjects.MapRequest](f) }
func FuzzPTStatus(f *testing.F)         { fuzzDecoder[subjects.PTStatus](f) }
func FuzzRunJob(f *testing.F)           { fuzzDecoder[subjects.RunJob](f) }
func FuzzRunJobReply(f *testing.F)      { fuzzDecoder[subjects.RunJobReply](f) }
func FuzzRunBatch(f *testing.F)         { fuzzDecoder[subjects.RunBatch](f) }
func FuzzRunBatchReply(f *testing.F)    { fuzzDecoder[subjects.RunBatchReply](f) }
func FuzzRunInstances(f *testing.F)     { fuzzDecoder[subjects.RunInstances](f) }
func FuzzRunResults(f *testing.F)       { fuzzDecoder[subjects.RunResults](f) }
func FuzzInstanceStatuses(f *testing.F) { fuzzDecoder[subjects.InstanceStatuses](f) }
func FuzzJobSave(f *testing.F)          { fuzzDecoder[subjects.JobSave](f) }
func FuzzJobReply(f *testing.F)         { fuzzDecoder[subjects.JobReply](f) }
func FuzzJobRef(f *testing.F)           { fuzzDecoder[subjects.JobRef](f) }
func FuzzJobEnable(f *testing.F)        { fuzzDecoder[subjects.JobEnable](f) }
func FuzzJobRun(f *testing.F)           { fuzzDecoder[subjects.JobRun](f) }

// malformedSeeds are inputs the decoders must refuse without panicking.
func malformedSeeds(tb testing.TB) [][]byte {
	heartbeat := readGolden(tb, "heartbeat")
	return [][]byte{
		nil,
		{0xc0},
		{0x80},
		{0x81, 0xa1, 'v', 0x01},
		{0x81, 0xa1, 'v', 0xcd, 0x01, 0x01}, // v=257
		{0x81, 0xa1, 'v', 0xc1},
		[]byte(`{"v":1}`),
		heartbeat[:len(heartbeat)/2],
		append(append([]byte{}, heartbeat...), 0xc0),
		{0x92, 0x01, 0xa1, 'x'},
		{0x82, 0xa1, 'v', 0x01, 0xa5, 'l', 'i', 'n', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x82, 0xa1, 'v', 0x01, 0xa6, 'c', 'u', 's', 't', 'o', 'm', 0xdf, 0xff, 0xff, 0xff, 0xff},
		{0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'a', 'g', 's', 0xdc, 0xff, 0xff},
		append([]byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 40)...),
	}
}

// seedDecoders adds every golden fixture (of every type: a heartbeat fed to
// the LogBatch decoder is a good near miss) and the malformed seeds.
func seedDecoders(f *testing.F) {
	for _, c := range goldenCases {
		f.Add(readGolden(f, c.name))
	}
	for _, b := range malformedSeeds(f) {
		f.Add(b)
	}
}

// fuzzDecoder checks that decoding never panics, that every refusal maps to
// a client-side code, and that whatever decodes re-encodes to a message
// that decodes to the same value.
func fuzzDecoder[T any, PT interface {
	*T
	subjects.Message
}](f *testing.F) {
	seedDecoders(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var first T
		if err := subjects.Unmarshal(data, PT(&first)); err != nil {
			code := subjects.CodeOf(err)
			require.Contains(t, []subjects.Code{subjects.CodeBadRequest, subjects.CodeTooLarge}, code,
				"decode error %v maps to %s", err, code)
			var de *subjects.DecodeError
			require.ErrorAs(t, err, &de, "decode errors are DecodeErrors")
			require.NotContains(t, de.Describe(), "subjects.", "no Go type names for people")
			return
		}
		b1, err := subjects.Marshal(PT(&first))
		if errors.Is(err, subjects.ErrTooLarge) {
			return // compact input can grow on re-encoding (fixint into an int64 field)
		}
		require.NoError(t, err)

		var second T
		require.NoError(t, subjects.Unmarshal(b1, PT(&second)), "re-encoded %x", b1)
		b2, err := subjects.Marshal(PT(&second))
		require.NoError(t, err)
		require.Equal(t, b1, b2, "encoding is not stable")
		if reflect.DeepEqual(first, first) { // false only when a float is NaN
			require.Equal(t, first, second)
		}
	})
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		subjects.Assert("demo"),
		subjects.Acquire("demo"),
		subjects.HeartbeatSubject("demo", "srv-1"),
		subjects.ServerVerb("demo", "srv-1", subjects.VerbInstanceStatus),
		subjects.LogsSubject("demo", "i-1"),
		subjects.WorkerVerb("demo", "w-1", subjects.MailboxTaskTracker, "run"),
		subjects.WorkersBroadcast("demo", subjects.MailboxDeployContainer),
		subjects.WorkerAll("demo", "w-1"),
		subjects.LogsAll,
		"", ".", "jw", "jw....", "jw.demo.server.", "jw.*.server.assert", "jw.demo.server.>",
		"jw.应用.logs.i", "jw.demo.logs." + strings.Repeat("i", 200),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, subject string) {
		a, err := subjects.Parse(subject)
		if err != nil {
			require.ErrorIs(t, err, subjects.ErrBadSubject)
			require.Zero(t, a)
			return
		}
		for _, tok := range []string{a.App, a.Kind, a.ServerID, a.WorkerID, a.Mailbox, a.Verb, a.Instance} {
			if tok != "" {
				require.NoError(t, subjects.ValidToken(tok))
			}
		}
		require.Equal(t, subject, rebuild(t, a))
	})
}

func FuzzValidToken(f *testing.F) {
	for _, s := range []string{"demo", "", "a.b", "*", ">", "a b", "é", "A-z_0=9", strings.Repeat("a", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) >= 1 && len(s) <= subjects.MaxTokenLen
		for _, r := range s {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=", r) {
				want = false
			}
		}
		err := subjects.ValidToken(s)
		require.Equal(t, want, err == nil, "ValidToken(%q) = %v", s, err)
		if err != nil {
			require.ErrorIs(t, err, subjects.ErrBadToken)
		}
	})
}
