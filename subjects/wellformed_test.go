package subjects

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
)

// withX is a top-level map {"v": 1, "x": <value>}.
func withX(value ...byte) []byte {
	return append([]byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'x'}, value...)
}

func TestScanMessageAcceptsEveryType(t *testing.T) {
	t.Parallel()
	values := map[string][]byte{
		"positive fixint": {0x7f},
		"negative fixint": {0xe0},
		"nil":             {0xc0},
		"false":           {0xc2},
		"true":            {0xc3},
		"fixmap":          {0x81, 0xa1, 'k', 0x01},
		"fixarray":        {0x92, 0x01, 0x02},
		"fixstr":          {0xa3, 'a', 'b', 'c'},
		"empty fixstr":    {0xa0},
		"bin8":            {0xc4, 0x02, 0xff, 0x00},
		"bin16":           {0xc5, 0x00, 0x01, 0xff},
		"bin32":           {0xc6, 0x00, 0x00, 0x00, 0x01, 0xff},
		"ext8":            {0xc7, 0x01, 0x05, 0xaa},
		"ext16":           {0xc8, 0x00, 0x01, 0x05, 0xaa},
		"ext32":           {0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0xaa},
		"float32":         {0xca, 0, 0, 0, 0},
		"float64":         {0xcb, 0, 0, 0, 0, 0, 0, 0, 0},
		"uint8":           {0xcc, 0xff},
		"uint16":          {0xcd, 0xff, 0xff},
		"uint32":          {0xce, 0, 0, 0, 1},
		"uint64":          {0xcf, 0, 0, 0, 0, 0, 0, 0, 1},
		"int8":            {0xd0, 0x80},
		"int16":           {0xd1, 0x80, 0x00},
		"int32":           {0xd2, 0, 0, 0, 1},
		"int64":           {0xd3, 0, 0, 0, 0, 0, 0, 0, 1},
		"fixext1":         {0xd4, 0x01, 0xaa},
		"fixext2":         {0xd5, 0x01, 0xaa, 0xbb},
		"fixext4":         {0xd6, 0xff, 0, 0, 0, 0},
		"fixext8":         {0xd7, 0xff, 0, 0, 0, 0, 0, 0, 0, 0},
		"fixext16":        append([]byte{0xd8, 0x01}, make([]byte, 16)...),
		"str8":            {0xd9, 0x01, 'a'},
		"str16":           {0xda, 0x00, 0x01, 'a'},
		"str32":           {0xdb, 0x00, 0x00, 0x00, 0x01, 'a'},
		"array16":         {0xdc, 0x00, 0x01, 0xc0},
		"array32":         {0xdd, 0x00, 0x00, 0x00, 0x01, 0xc0},
		"map16":           {0xde, 0x00, 0x01, 0xa1, 'k', 0xc0},
		"map32":           {0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0xc0},
	}
	for name, value := range values {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ver, err := scanMessage(withX(value...))
			require.NoError(t, err)
			require.Equal(t, wireVersion{found: true, ok: true, value: 1}, ver)

			// Cut anywhere, the value is truncated.
			for i := range value {
				_, err := scanMessage(withX(value[:i]...))
				require.ErrorIs(t, err, errTruncated, "cut at %d", i)
			}
		})
	}
}

func TestScanMessageRejects(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, errNotMap},
		{"array at top", []byte{0x91, 0x01}, errNotMap},
		{"string at top", []byte{0xa1, 'v'}, errNotMap},
		{"reserved code", withX(0xc1), nil},
		{"trailing byte", append(withX(0xc0), 0xc0), errTrailerData},
		{"array count beyond data", withX(0xdd, 0xff, 0xff, 0xff, 0xff), errTruncated},
		{"map count beyond data", withX(0xdf, 0x00, 0x00, 0x00, 0x02, 0xa1, 'k', 0xc0), errTruncated},
		{"string length beyond data", withX(0xdb, 0xff, 0xff, 0xff, 0xff), errTruncated},
		{"ext length beyond data", withX(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01), errTruncated},
		{"top map count beyond data", []byte{0x83, 0xa1, 'v', 0x01}, errTruncated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := scanMessage(tc.data)
			require.Error(t, err)
			if tc.want != nil {
				require.ErrorIs(t, err, tc.want)
			}
		})
	}
}

func TestScanMessageDepth(t *testing.T) {
	t.Parallel()
	nested := func(arrays int) []byte {
		return withX(append(bytes.Repeat([]byte{0x91}, arrays), 0xc0)...)
	}
	// The top-level map is level one.
	_, err := scanMessage(nested(maxDepth - 1))
	require.NoError(t, err)
	_, err = scanMessage(nested(maxDepth))
	require.ErrorIs(t, err, errTooDeep)
	_, err = scanMessage(nested(100_000))
	require.ErrorIs(t, err, errTooDeep)
}

func TestScanMessageVersion(t *testing.T) {
	t.Parallel()
	enc := func(v any) []byte {
		b, err := msgpack.Marshal(map[string]any{"v": v})
		require.NoError(t, err)
		return b
	}
	cases := []struct {
		name string
		data []byte
		want wireVersion
	}{
		{"fixint", enc(1), wireVersion{found: true, ok: true, value: 1}},
		{"uint8", enc(uint8(200)), wireVersion{found: true, ok: true, value: 200}},
		{"uint16", enc(uint16(257)), wireVersion{found: true, ok: true, value: 257}},
		{"uint32", []byte{0x81, 0xa1, 'v', 0xce, 0, 1, 0, 0}, wireVersion{found: true, ok: true, value: 1 << 16}},
		{"uint64", []byte{0x81, 0xa1, 'v', 0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, wireVersion{found: true, ok: true, value: 1 << 32}},
		{"int8", []byte{0x81, 0xa1, 'v', 0xd0, 0x01}, wireVersion{found: true, ok: true, value: 1}},
		{"int16", []byte{0x81, 0xa1, 'v', 0xd1, 0x01, 0x01}, wireVersion{found: true, ok: true, value: 257}},
		{"int32", []byte{0x81, 0xa1, 'v', 0xd2, 0, 0, 0, 2}, wireVersion{found: true, ok: true, value: 2}},
		{"int64", []byte{0x81, 0xa1, 'v', 0xd3, 0, 0, 0, 0, 0, 0, 0, 3}, wireVersion{found: true, ok: true, value: 3}},
		{"negative fixint", enc(-1), wireVersion{found: true}},
		{"negative int16", []byte{0x81, 0xa1, 'v', 0xd1, 0xff, 0x00}, wireVersion{found: true}},
		{"string", enc("1"), wireVersion{found: true}},
		{"nil", enc(nil), wireVersion{found: true}},
		{"key as str8", []byte{0x81, 0xd9, 0x01, 'v', 0x01}, wireVersion{found: true, ok: true, value: 1}},
		{"key as bin8", []byte{0x81, 0xc4, 0x01, 'v', 0x01}, wireVersion{found: true, ok: true, value: 1}},
		{"absent", []byte{0x81, 0xa1, 'w', 0x01}, wireVersion{}},
		{"only nested", []byte{0x81, 0xa1, 'm', 0x81, 0xa1, 'v', 0x01}, wireVersion{}},
		{"last of two wins", []byte{0x82, 0xa1, 'v', 0x01, 0xa1, 'v', 0x05}, wireVersion{found: true, ok: true, value: 5}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := scanMessage(tc.data)
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestCustomMetricsEncodeSorted(t *testing.T) {
	t.Parallel()
	var nilMap CustomMetrics
	b, err := msgpack.Marshal(nilMap)
	require.NoError(t, err)
	require.Equal(t, []byte{0xc0}, b)

	b, err = msgpack.Marshal(CustomMetrics{"b": 2, "a": 1, "c": 3})
	require.NoError(t, err)
	require.Equal(t, []byte{0x83,
		0xa1, 'a', 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
		0xa1, 'b', 0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0,
		0xa1, 'c', 0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0,
	}, b)

	var back CustomMetrics
	require.NoError(t, msgpack.Unmarshal(b, &back))
	require.Equal(t, CustomMetrics{"a": 1, "b": 2, "c": 3}, back)
}
