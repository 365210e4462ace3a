package subjects

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// fillAll sets every exported field of v to a non-zero value.
func fillAll(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillAll(v.Field(i), n)
			}
		}
	case reflect.String:
		v.SetString(string(rune('a' + *n%26)))
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint8, reflect.Uint64:
		v.SetUint(uint64(*n % 200))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fillAll(s.Index(0), n)
		fillAll(s.Index(1), n)
		v.Set(s)
	}
}

// TestFastDecodersMatchReflection: the hand-written decoders read every
// field the struct tags name (a field added to the struct and not to its
// decoder fails here), skip unknown keys, and read nil as zero.
func TestFastDecodersMatchReflection(t *testing.T) {
	t.Parallel()
	for _, v := range []any{&InstanceStatus{}, &TaskCounts{}, &JobSpec{}, &RunInstance{}, &RunJob{},
		&InstanceStatuses{}, &RunInstances{}, &RunBatch{}, &Selection{}} {
		n := 0
		fillAll(reflect.ValueOf(v).Elem(), &n)
		// Encode by reflection (a map with every key), plus an unknown key.
		var m map[string]any
		b, err := msgpack.Marshal(v)
		require.NoError(t, err)
		require.NoError(t, msgpack.Unmarshal(b, &m))
		m["from_the_future"] = []any{1, "x", map[string]any{"y": nil}}
		b, err = msgpack.Marshal(m)
		require.NoError(t, err)
		got := reflect.New(reflect.TypeOf(v).Elem()).Interface()
		require.NoError(t, got.(fastDecoder).decodeFrom(&reader{b: b}))
		require.Equal(t, v, got, "%T from bytes", v)
		if _, nests := got.(msgpack.CustomDecoder); nests {
			got = reflect.New(reflect.TypeOf(v).Elem()).Interface()
			require.NoError(t, msgpack.Unmarshal(b, got))
			require.Equal(t, v, got, "%T nested", v)
		}
	}
	var st InstanceStatus
	require.NoError(t, msgpack.Unmarshal([]byte{0x82, 0xa5, 's', 't', 'a', 't', 'e', 0xc0, 0xa6, 'r', 'e', 's', 'u', 'l', 't', 0xc0}, &st))
	require.Equal(t, InstanceStatus{}, st, "nil reads as zero")
}

// Method-less copies of the types with hand-written encoders: msgpack
// encodes them by reflection.
type (
	plainStatus      InstanceStatus
	plainCounts      TaskCounts
	plainSpec        JobSpec
	plainRunInstance RunInstance
	plainSelection   Selection
	plainRunJob      RunJob
)

// TestFastEncodersMatchReflection: the hand-written encoders write the
// reflective encoder's bytes exactly, for zero values, nil and empty
// slices, filled values, every width of a compact int and every length
// class of a string; the batch messages as the reflective encoder writes
// their wrapper.
func TestFastEncodersMatchReflection(t *testing.T) {
	t.Parallel()
	same := func(fast fastEncoder, plain any) {
		t.Helper()
		want, err := msgpack.Marshal(plain)
		require.NoError(t, err)
		got, err := fast.appendTo(nil)
		require.NoError(t, err)
		require.Equal(t, want, got, "%T", fast)
		nested, err := msgpack.Marshal(fast)
		require.NoError(t, err)
		require.Equal(t, want, nested, "%T through msgpack.CustomEncoder", fast)
	}
	ints := []int{0, 1, 127, 128, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, -1, -32, -33, -128, -129, -32768, -32769, -1 << 31, -1<<31 - 1}
	lengths := []int{0, 31, 32, 255, 256, 65535, 65536}
	for round := range 3 + len(ints) {
		var st InstanceStatus
		var c TaskCounts
		var j JobSpec
		var ri RunInstance
		var sel Selection
		var rj RunJob
		if round > 0 {
			n := round * 1000
			for _, v := range []any{&st, &c, &j, &ri, &sel, &rj} {
				fillAll(reflect.ValueOf(v).Elem(), &n)
			}
		}
		if round == 2 {
			st.Recent, ri.Workers, j.RetentionMS, sel.Tags = []SubInstance{}, []string{}, 0, nil
			c.Total, j.PeriodMS = 1<<40, -5
		}
		if round >= 3 {
			i := ints[round-3]
			j.MaxInstances, j.Concurrency, j.TaskRetries, j.MaxWorkers = i, -i, i/2, i+1
			j.Params = strings.Repeat("p", lengths[(round-3)%len(lengths)])
			rj.Job = j
		}
		same(&st, (*plainStatus)(&st))
		same(&c, (*plainCounts)(&c))
		same(&j, (*plainSpec)(&j))
		same(&ri, (*plainRunInstance)(&ri))
		same(&sel, (*plainSelection)(&sel))
		same(&rj, (*plainRunJob)(&rj))
		for _, m := range []fastEncoder{&InstanceStatuses{Statuses: []InstanceStatus{st, st}}, &InstanceStatuses{},
			&RunInstances{Runs: []RunInstance{ri}}, &RunInstances{}, &RunBatch{App: "a", Runs: []RunJob{rj, rj}, Key: "k"}, &RunBatch{}} {
			want, err := msgpack.Marshal(m) // the wrapper by reflection
			require.NoError(t, err)
			got, err := m.appendTo(nil)
			require.NoError(t, err)
			require.Equal(t, want, got, "%T", m)
		}
	}
}

// TestFastDecodersIntegerWidths: integers of every msgpack width and sign,
// strings as str or bin, and wrong types read as the reflective decoder
// reads them.
func TestFastDecodersIntegerWidths(t *testing.T) {
	t.Parallel()
	for _, v := range []any{int8(-5), uint8(200), int16(-300), uint16(60000), int32(-70000), uint32(4e9),
		int64(-1 << 40), uint64(1 << 63), -1, 0, nil, 1.5, "7", []byte("x"), true} {
		for _, key := range []string{"period_ms", "concurrency", "name", "processor"} {
			b, err := msgpack.Marshal(map[string]any{key: v})
			require.NoError(t, err)
			var want plainSpec
			wantErr := msgpack.Unmarshal(b, &want)
			var got JobSpec
			gotErr := got.decodeFrom(&reader{b: b})
			require.Equal(t, wantErr == nil, gotErr == nil, "%s=%#v: reflection %v, bytes %v", key, v, wantErr, gotErr)
			if wantErr == nil {
				require.Equal(t, JobSpec(want), got, "%s=%#v", key, v)
			}
		}
		b, err := msgpack.Marshal(map[string]any{"min_cpu_cores": v, "tags": []any{v}})
		require.NoError(t, err)
		var want plainSelection
		wantErr := msgpack.Unmarshal(b, &want)
		var got Selection
		gotErr := got.decodeFrom(&reader{b: b})
		require.Equal(t, wantErr == nil, gotErr == nil, "selection %#v: reflection %v, bytes %v", v, wantErr, gotErr)
		if wantErr == nil {
			require.Equal(t, Selection(want), got, "selection %#v", v)
		}
	}
}
