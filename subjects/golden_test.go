package subjects_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.msgpack from goldenCases")

// goldenDir holds the fixtures, at the repository root so that peers in
// other languages can test their codecs against the same bytes.
const goldenDir = "../testdata/golden"

// goldenCase is one wire message pinned byte for byte.
type goldenCase struct {
	// name is the fixture's file name without extension:
	// testdata/golden/<name>.msgpack.
	name string
	// sample returns a fresh, valid message with every field set, so that
	// the fixture pins every key (checked by TestGoldenSamplesAreComplete).
	sample func() subjects.Message
	// allowZero lists fields (dotted Go paths, e.g. "Metrics.CPULoad")
	// that may stay zero because a zero is the only valid value.
	allowZero []string
}

// goldenCases has one entry per wire message type. Append an entry when
// you add a message type, then run
//
//	go test ./subjects -run Golden -update
//
// and commit the new testdata/golden/<name>.msgpack. The fuzz targets are
// seeded from this table too. Changing an existing fixture changes the wire
// protocol: bump subjects.Version or make sure old peers still decode it.
var goldenCases = []goldenCase{
	{name: "assert_request", sample: func() subjects.Message {
		return &subjects.AssertRequest{App: "demo", WorkerID: "w-host1-4242-abc123"}
	}},
	{name: "assert_reply", sample: func() subjects.Message {
		return &subjects.AssertReply{App: "demo", AppID: 7}
	}},
	{name: "acquire_request", sample: func() subjects.Message {
		return &subjects.AcquireRequest{App: "demo", WorkerID: "w-host1-4242-abc123", CurrentServer: "srv-host2-17-xyz789"}
	}},
	{name: "acquire_reply", sample: func() subjects.Message {
		return &subjects.AcquireReply{ServerID: "srv-host2-17-xyz789"}
	}},
	{name: "heartbeat", sample: func() subjects.Message {
		return &subjects.Heartbeat{
			WorkerID: "w-host1-4242-abc123",
			App:      "demo",
			AppID:    7,
			Host:     "host1.example.com",
			PID:      4242,
			Version:  "0.1.0",
			Tags:     []string{"gpu", "zone-a"},
			Seq:      1001,
			Metrics: subjects.Metrics{
				CPUCores:    8,
				CPULoad:     1.5,
				CPUUsage:    37.25,
				MemTotal:    16 << 30,
				MemUsed:     6 << 30,
				DiskTotal:   512 << 30,
				DiskUsed:    100 << 30,
				ProcessRSS:  120 << 20,
				NumRoutines: 57,
			},
			// Several keys: the encoding must not depend on map order.
			Custom:        subjects.CustomMetrics{"queue_depth": 12, "cache_hit_ratio": 0.875, "backlog": -3.5, "z_last": 1e9},
			Score:         21.125,
			Containers:    []subjects.ContainerInfo{{ID: 3, Name: "resize", Version: "9e107d9d372bb6826bd81d3542a419d6"}, {ID: 4, Name: "ocr", Version: "e4d909c290d0fb1ca068ffaddf22cbd0"}},
			Processors:    []string{"demo.hello", "demo.primes"},
			LightTrackers: 2,
			HeavyTrackers: 1,
			ProcTrackers:  3,
			Overloaded:    true,
			LogLinesDrop:  5,
			ShuttingDown:  true,
		}
	}},
	{name: "log_batch", sample: func() subjects.Message {
		return &subjects.LogBatch{
			App:        "demo",
			WorkerID:   "w-host1-4242-abc123",
			InstanceID: "i-0001",
			Lines: []subjects.LogLine{
				{Seq: 41, TimeMS: 1_763_760_000_000, Level: -4, TaskID: "0", Message: "debug: starting"},
				{Seq: 42, TimeMS: 1_763_760_000_123, Level: 0, TaskID: "0.1", Message: "processed 10 rows"},
				{Seq: 43, TimeMS: 1_763_760_000_456, Level: 8, TaskID: "0.2", Message: "failed: ünïcödé ✓\nsecond line"},
			},
			Dropped: 2,
		}
	}},
	{name: "error", sample: func() subjects.Message {
		return subjects.Errorf(subjects.CodeUnknownApp, "app %q is not registered", "demo")
	}},
}

func goldenPath(name string) string { return filepath.Join(goldenDir, name+".msgpack") }

// fresh returns a new zero message of m's type.
func fresh(m subjects.Message) subjects.Message {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(subjects.Message)
}

// stamped returns a sample with the version set, as Unmarshal returns it.
func stamped(t *testing.T, c goldenCase) subjects.Message {
	t.Helper()
	m := c.sample()
	_, err := subjects.Marshal(m) // stamps V
	require.NoError(t, err)
	return m
}

func readGolden(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(goldenPath(name))
	require.NoError(t, err, "missing fixture; run: go test ./subjects -run Golden -update")
	return b
}

// TestGolden pins every message's encoding and checks that the fixture
// decodes back to the sample. It is not parallel at the top level so that
// with -update the fixtures are written before the parallel tests read
// them.
func TestGolden(t *testing.T) {
	if *update {
		require.NoError(t, os.MkdirAll(goldenDir, 0o755))
	}
	names := map[string]bool{}
	for _, c := range goldenCases {
		require.False(t, names[c.name], "duplicate golden case %q", c.name)
		names[c.name] = true
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := subjects.Marshal(c.sample())
			require.NoError(t, err)
			if *update {
				require.NoError(t, os.WriteFile(goldenPath(c.name), got, 0o644))
			}
			want := readGolden(t, c.name)
			require.Equal(t, want, got, "encoding of %s changed; if intended, run with -update and review the wire change", c.name)

			// Map iteration order must not leak into the bytes.
			for range 20 {
				again, err := subjects.Marshal(c.sample())
				require.NoError(t, err)
				require.Equal(t, got, again, "Marshal is not deterministic")
			}

			dec := fresh(c.sample())
			require.NoError(t, subjects.Unmarshal(want, dec))
			require.Equal(t, stamped(t, c), dec)
		})
	}
}

// TestGoldenSamplesAreComplete keeps the fixtures honest: a field left zero
// in a sample would be encoded as a zero, and a type change of that field
// could go unnoticed.
func TestGoldenSamplesAreComplete(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var zero []string
			zeroFields(reflect.ValueOf(c.sample()).Elem(), "", &zero)
			for _, allowed := range c.allowZero {
				zero = slicesDelete(zero, allowed)
			}
			require.Empty(t, zero, "sample %s leaves fields zero; set them or list them in allowZero", c.name)
		})
	}
}

func zeroFields(v reflect.Value, path string, out *[]string) {
	for i := range v.NumField() {
		f, fv := v.Type().Field(i), v.Field(i)
		if f.Type == reflect.TypeOf(subjects.Proto{}) {
			continue // stamped by Marshal
		}
		p := f.Name
		if path != "" {
			p = path + "." + f.Name
		}
		switch {
		case fv.Kind() == reflect.Struct:
			zeroFields(fv, p, out)
		case fv.IsZero(), (fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0:
			*out = append(*out, p)
		}
	}
}

func slicesDelete(s []string, x string) []string {
	out := s[:0]
	for _, e := range s {
		if e != x {
			out = append(out, e)
		}
	}
	return out
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestFieldTagsAreSnakeCase checks every wire struct reachable from the
// golden cases: a field without a msgpack tag would go out under its Go
// name.
func TestFieldTagsAreSnakeCase(t *testing.T) {
	t.Parallel()
	seen := map[reflect.Type]bool{}
	var check func(typ reflect.Type)
	check = func(typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] {
			return
		}
		seen[typ] = true
		keys := map[string]string{}
		for f := range fields(typ) {
			tag := strings.Split(f.Tag.Get("msgpack"), ",")[0]
			require.True(t, snakeCase.MatchString(tag), "%s.%s has msgpack key %q, want snake_case", typ.Name(), f.Name, tag)
			require.Empty(t, keys[tag], "%s: key %q used by %s and %s", typ.Name(), tag, keys[tag], f.Name)
			keys[tag] = f.Name
			check(f.Type)
		}
	}
	for _, c := range goldenCases {
		check(reflect.TypeOf(c.sample()))
	}
}

// fields yields a struct's wire fields, flattening embedded structs as the
// msgpack encoder does.
func fields(typ reflect.Type) func(func(reflect.StructField) bool) {
	return func(yield func(reflect.StructField) bool) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			if !f.IsExported() {
				continue
			}
			if f.Anonymous && f.Tag.Get("msgpack") == "" {
				for g := range fields(f.Type) {
					if !yield(g) {
						return
					}
				}
				continue
			}
			if !yield(f) {
				return
			}
		}
	}
}

// asMap decodes a fixture generically, as a peer in another language would.
func asMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, msgpack.Unmarshal(b, &m))
	return m
}

func TestGoldenKeys(t *testing.T) {
	t.Parallel()
	keys := map[string][]string{
		"assert_request":  {"v", "app", "worker_id"},
		"assert_reply":    {"v", "app", "app_id"},
		"acquire_request": {"v", "app", "worker_id", "current_server"},
		"acquire_reply":   {"v", "server_id"},
		"heartbeat": {"v", "worker_id", "app", "app_id", "host", "pid", "version", "tags", "seq", "metrics", "custom", "score",
			"containers", "processors", "light_trackers", "heavy_trackers", "processor_trackers", "overloaded", "log_lines_dropped", "shutting_down"},
		"log_batch": {"v", "app", "worker_id", "instance_id", "lines", "dropped"},
		"error":     {"v", "code", "message"},
	}
	for name, want := range keys {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := asMap(t, readGolden(t, name))
			got := make([]string, 0, len(m))
			for k := range m {
				got = append(got, k)
			}
			require.ElementsMatch(t, want, got)
			require.EqualValues(t, subjects.Version, m["v"])
		})
	}

	t.Run("nested", func(t *testing.T) {
		t.Parallel()
		hb := asMap(t, readGolden(t, "heartbeat"))
		metrics := hb["metrics"].(map[string]any)
		require.ElementsMatch(t, []string{"cpu_cores", "cpu_load", "cpu_usage", "mem_total", "mem_used", "disk_total", "disk_used",
			"process_rss", "num_goroutines"}, mapKeys(metrics))
		require.EqualValues(t, 8, metrics["cpu_cores"])
		require.EqualValues(t, 0.875, hb["custom"].(map[string]any)["cache_hit_ratio"])
		container := hb["containers"].([]any)[0].(map[string]any)
		require.ElementsMatch(t, []string{"id", "name", "version"}, mapKeys(container))

		lb := asMap(t, readGolden(t, "log_batch"))
		line := lb["lines"].([]any)[2].(map[string]any)
		require.ElementsMatch(t, []string{"seq", "ts", "lvl", "task_id", "msg"}, mapKeys(line))
		require.EqualValues(t, 8, line["lvl"])

		e := asMap(t, readGolden(t, "error"))
		require.Equal(t, "unknown_app", e["code"])
	})
}

func mapKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// encodeMap re-encodes a generic map, as a peer in another language would.
func encodeMap(t *testing.T, m map[string]any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(m)
	require.NoError(t, err)
	return b
}

func TestUnknownFieldsAreIgnored(t *testing.T) {
	t.Parallel()
	for _, c := range goldenCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m := asMap(t, readGolden(t, c.name))
			m["zz_future_field"] = map[string]any{"nested": []any{1, "two", 3.5, nil, map[string]any{"deep": true}}}
			m["another_new_one"] = "x"
			dec := fresh(c.sample())
			require.NoError(t, subjects.Unmarshal(encodeMap(t, m), dec))
			require.Equal(t, stamped(t, c), dec)
		})
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		set  func(m map[string]any)
		ok   bool
	}{
		{"missing", func(m map[string]any) { delete(m, "v") }, false},
		{"zero", func(m map[string]any) { m["v"] = 0 }, false},
		{"nil", func(m map[string]any) { m["v"] = nil }, false},
		{"newer", func(m map[string]any) { m["v"] = 2 }, false},
		// 257 truncated to uint8 is 1: it must still be refused.
		{"newer wrapping uint8", func(m map[string]any) { m["v"] = 257 }, false},
		{"huge", func(m map[string]any) { m["v"] = uint64(1) << 63 }, false},
		{"negative", func(m map[string]any) { m["v"] = -1 }, false},
		{"string", func(m map[string]any) { m["v"] = "1" }, false},
		{"float", func(m map[string]any) { m["v"] = 1.0 }, false},
		{"current as int64", func(m map[string]any) { m["v"] = int64(1) }, true},
		{"current as uint16", func(m map[string]any) { m["v"] = uint16(1) }, true},
	}
	for _, c := range goldenCases {
		for _, tc := range cases {
			t.Run(c.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				m := asMap(t, readGolden(t, c.name))
				tc.set(m)
				err := subjects.Unmarshal(encodeMap(t, m), fresh(c.sample()))
				if tc.ok {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, subjects.ErrVersion)
				require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
			})
		}
	}
}

func TestMarshalStampsVersion(t *testing.T) {
	t.Parallel()
	m := &subjects.AcquireReply{Proto: subjects.Proto{V: 99}, ServerID: "srv-1"}
	b, err := subjects.Marshal(m)
	require.NoError(t, err)
	require.EqualValues(t, subjects.Version, asMap(t, b)["v"])
	require.Equal(t, subjects.Version, m.V)
}

func TestMalformed(t *testing.T) {
	t.Parallel()
	golden := readGolden(t, "heartbeat")
	cases := []struct {
		name string
		data []byte
	}{
		{"nil", nil},
		{"empty", []byte{}},
		{"msgpack nil", []byte{0xc0}},
		{"not msgpack", []byte("hello, world")},
		{"json", []byte(`{"v":1,"app":"demo"}`)},
		{"truncated", golden[:len(golden)-1]},
		{"cut in half", golden[:len(golden)/2]},
		{"trailing nil", append(append([]byte{}, golden...), 0xc0)},
		{"trailing zero", append(append([]byte{}, golden...), 0x00)},
		{"two messages", append(append([]byte{}, golden...), golden...)},
		{"array instead of map", mustMarshal(t, []any{1, "demo", "w-1"})},
		{"wrong field type", encodeMap(t, map[string]any{"v": 1, "worker_id": 42, "app": "demo"})},
		{"reserved code", []byte{0x81, 0xa1, 'v', 0xc1}},
		// 15 bytes declaring 2^32-1 log lines: must fail fast, not allocate.
		{"huge array prefix", []byte{0x82, 0xa1, 'v', 0x01, 0xaa, 'c', 'o', 'n', 't', 'a', 'i', 'n', 'e', 'r', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}},
		{"huge map prefix", []byte{0x82, 0xa1, 'v', 0x01, 0xa6, 'c', 'u', 's', 't', 'o', 'm', 0xdf, 0xff, 0xff, 0xff, 0xff}},
		{"huge string prefix", []byte{0x82, 0xa1, 'v', 0x01, 0xa3, 'a', 'p', 'p', 0xdb, 0xff, 0xff, 0xff, 0xff}},
		{"too deep", deep(64)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var hb subjects.Heartbeat
			err := subjects.Unmarshal(tc.data, &hb)
			require.ErrorIs(t, err, subjects.ErrMalformed)
			require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
		})
	}
}

// TestHugeLogBatchPrefixDoesNotAllocate is not parallel: it reads the
// process-wide allocation counter.
func TestHugeLogBatchPrefixDoesNotAllocate(t *testing.T) {
	// msgpack/v5 v5.4.1 alone allocates 2^32-1 LogLines (240 GB) for these
	// 15 bytes and the runtime dies of an out of memory fatal error.
	data := []byte{0x82, 0xa1, 'v', 0x01, 0xa5, 'l', 'i', 'n', 'e', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 100 {
		var b subjects.LogBatch
		require.ErrorIs(t, subjects.Unmarshal(data, &b), subjects.ErrMalformed)
	}
	runtime.ReadMemStats(&after)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(1<<20), "100 rejections must not allocate a MiB")
}

// deep is a message with an unknown field nested depth arrays deep.
func deep(depth int) []byte {
	b := []byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'x'}
	for range depth {
		b = append(b, 0x91)
	}
	return append(b, 0xc0)
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestTooLarge(t *testing.T) {
	t.Parallel()
	t.Run("unmarshal", func(t *testing.T) {
		t.Parallel()
		data := make([]byte, subjects.MaxMessageSize+1)
		err := subjects.Unmarshal(data, &subjects.LogBatch{})
		require.ErrorIs(t, err, subjects.ErrTooLarge)
		require.Equal(t, subjects.CodeTooLarge, subjects.CodeOf(err))
	})
	t.Run("marshal", func(t *testing.T) {
		t.Parallel()
		b := &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1",
			Lines: []subjects.LogLine{{Seq: 1, Message: strings.Repeat("x", subjects.MaxMessageSize)}}}
		_, err := subjects.Marshal(b)
		require.ErrorIs(t, err, subjects.ErrTooLarge)
		require.Equal(t, subjects.CodeTooLarge, subjects.CodeOf(err))
	})
	t.Run("at the limit", func(t *testing.T) {
		t.Parallel()
		b := &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1", Lines: []subjects.LogLine{{Seq: 1}}}
		small, err := subjects.Marshal(b)
		require.NoError(t, err)
		// msg grows from fixstr "" (1 byte) to str32 (5 bytes of header).
		b.Lines[0].Message = strings.Repeat("x", subjects.MaxMessageSize-len(small)-4)
		data, err := subjects.Marshal(b)
		require.NoError(t, err)
		require.Len(t, data, subjects.MaxMessageSize)
		var got subjects.LogBatch
		require.NoError(t, subjects.Unmarshal(data, &got))
		require.Equal(t, b, &got)
	})
}

func TestInvalid(t *testing.T) {
	t.Parallel()
	tags65 := make([]string, 65)
	for i := range tags65 {
		tags65[i] = fmt.Sprintf("t%d", i)
	}
	cases := []struct {
		name string
		msg  subjects.Message
	}{
		{"assert request without app", &subjects.AssertRequest{WorkerID: "w-1"}},
		{"assert request with dotted app", &subjects.AssertRequest{App: "a.b"}},
		{"assert reply without app id", &subjects.AssertReply{App: "demo"}},
		{"assert reply with negative app id", &subjects.AssertReply{App: "demo", AppID: -1}},
		{"assert reply without app", &subjects.AssertReply{AppID: 1}},
		{"acquire request without worker", &subjects.AcquireRequest{App: "demo"}},
		{"acquire request without app", &subjects.AcquireRequest{WorkerID: "w-1"}},
		{"acquire request with wildcard worker", &subjects.AcquireRequest{App: "demo", WorkerID: "*"}},
		{"acquire reply without server", &subjects.AcquireReply{}},
		{"acquire reply with spaced server", &subjects.AcquireReply{ServerID: "srv 1"}},
		{"heartbeat without worker", &subjects.Heartbeat{App: "demo"}},
		{"heartbeat without app", &subjects.Heartbeat{WorkerID: "w-1"}},
		{"heartbeat with 65 tags", &subjects.Heartbeat{WorkerID: "w-1", App: "demo", Tags: tags65}},
		{"log batch without instance", &subjects.LogBatch{App: "demo", WorkerID: "w-1", Lines: []subjects.LogLine{{Seq: 1}}}},
		{"log batch with wildcard instance", &subjects.LogBatch{InstanceID: ">", Lines: []subjects.LogLine{{Seq: 1}}}},
		{"log batch with nothing to say", &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1"}},
		{"error without code", &subjects.Error{Message: "what?"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Marshal does not validate; the receiver does.
			b, err := subjects.Marshal(tc.msg)
			require.NoError(t, err)
			err = subjects.Unmarshal(b, fresh(tc.msg))
			require.ErrorIs(t, err, subjects.ErrInvalid)
			require.Equal(t, subjects.CodeBadRequest, subjects.CodeOf(err))
		})
	}
}

func TestValidEdgeCases(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		msg  subjects.Message
	}{
		{"assert request without worker id", &subjects.AssertRequest{App: "demo"}},
		{"acquire request without current server", &subjects.AcquireRequest{App: "demo", WorkerID: "w-1"}},
		{"minimal heartbeat", &subjects.Heartbeat{WorkerID: "w-1", App: "demo"}},
		{"heartbeat with 64 tags", &subjects.Heartbeat{WorkerID: "w-1", App: "demo", Tags: make([]string, 64)}},
		{"log batch reporting only drops", &subjects.LogBatch{App: "demo", WorkerID: "w-1", InstanceID: "i-1", Dropped: 3}},
		{"error without message", &subjects.Error{Code: subjects.CodeInternal}},
		{"error with a code from the future", &subjects.Error{Code: "rate_limited", Message: "later"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := subjects.Marshal(tc.msg)
			require.NoError(t, err)
			got := fresh(tc.msg)
			require.NoError(t, subjects.Unmarshal(b, got))
			require.Equal(t, tc.msg, got)
		})
	}
}

func TestNilMessage(t *testing.T) {
	t.Parallel()
	_, err := subjects.Marshal(nil)
	require.Error(t, err)
	require.Error(t, subjects.Unmarshal(readGolden(t, "error"), nil))
}
