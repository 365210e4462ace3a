package subjects

import (
	"reflect"
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
	for _, v := range []any{&InstanceStatus{}, &TaskCounts{}, &JobSpec{}, &RunInstance{}, &RunJob{}} {
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
		require.NoError(t, msgpack.Unmarshal(b, got))
		require.Equal(t, v, got, "%T", v)
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
)

// TestFastEncodersMatchReflection: the hand-written encoders write the
// reflective encoder's bytes exactly, for zero values, nil and empty
// slices and filled values.
func TestFastEncodersMatchReflection(t *testing.T) {
	t.Parallel()
	same := func(fast, plain any) {
		t.Helper()
		a, err := msgpack.Marshal(fast)
		require.NoError(t, err)
		b, err := msgpack.Marshal(plain)
		require.NoError(t, err)
		require.Equal(t, b, a, "%T", fast)
	}
	for round := range 3 {
		var st InstanceStatus
		var c TaskCounts
		var j JobSpec
		var ri RunInstance
		if round > 0 {
			n := round * 1000
			fillAll(reflect.ValueOf(&st).Elem(), &n)
			fillAll(reflect.ValueOf(&c).Elem(), &n)
			fillAll(reflect.ValueOf(&j).Elem(), &n)
			fillAll(reflect.ValueOf(&ri).Elem(), &n)
		}
		if round == 2 {
			st.Recent, ri.Workers, j.RetentionMS = []SubInstance{}, []string{}, 0
			c.Total, j.PeriodMS = 1<<40, -5
		}
		same(&st, (*plainStatus)(&st))
		same(&c, (*plainCounts)(&c))
		same(&j, (*plainSpec)(&j))
		same(&ri, (*plainRunInstance)(&ri))
		batch := &InstanceStatuses{Statuses: []InstanceStatus{st, st}}
		b1, err := Marshal(batch)
		require.NoError(t, err)
		var back InstanceStatuses
		require.NoError(t, msgpack.Unmarshal(b1, &back))
		require.Equal(t, batch.Statuses, back.Statuses)
	}
}
