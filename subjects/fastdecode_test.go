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
