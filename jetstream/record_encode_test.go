package jetstream

import (
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/jetworker/jetworker/subjects"
)

// fill sets every field of v (a pointer to a struct) to a non-zero value,
// recursively, so that a field the hand-written encoder forgets shows.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.String:
		v.SetString("s" + string(rune('a'+*n%26)))
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		v.SetUint(uint64(*n))
	case reflect.Float64:
		v.SetFloat(float64(*n) + 0.5)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		fill(s.Index(0), n)
		fill(s.Index(1), n)
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	}
}

// TestEncodeInstanceRoundTrip: every field of a record survives the
// hand-written encoder and the ordinary decoder (a field added to Instance
// or JobSpec and not to the encoder fails here); empty fields are left out
// and the id travels as the key.
func TestEncodeInstanceRoundTrip(t *testing.T) {
	t.Parallel()
	var in Instance
	n := 0
	fill(reflect.ValueOf(&in).Elem(), &n)
	b, err := encodeInstance(&in)
	require.NoError(t, err)
	out, err := decodeInstance(in.ID, b)
	require.NoError(t, err)
	require.Equal(t, in, *out)

	var raw map[string]any
	require.NoError(t, msgpack.Unmarshal(b, &raw))
	require.NotContains(t, raw, "id", "the key is the id")

	short := &Instance{ID: "x_1", App: "a", Job: subjects.JobSpec{Processor: "p"}, State: subjects.InstanceSucceeded}
	b, err = encodeInstance(short)
	require.NoError(t, err)
	raw = nil
	require.NoError(t, msgpack.Unmarshal(b, &raw))
	require.Len(t, raw, 3, "only app, job and state: %v", raw)
	require.Equal(t, map[string]any{"processor": "p"}, raw["job"])
	out, err = decodeInstance("x_1", b)
	require.NoError(t, err)
	require.Equal(t, *short, *out)
}
