package subjects

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxDepth bounds how deeply arrays and maps may nest in a message. The
// deepest message today is three levels (heartbeat → containers → one
// container); the bound leaves room for growth while keeping the walk
// and the decoder's recursion shallow.
const maxDepth = 32

var (
	errTruncated = errors.New("truncated")
	errTooDeep   = fmt.Errorf("nested deeper than %d levels", maxDepth)
	errNotMap    = errors.New("top level is not a map")
)

// wireVersion is what scanMessage learned about the "v" field.
type wireVersion struct {
	found bool
	ok    bool   // an integer that fits uint64
	value uint64 // meaningful when ok
}

// scanMessage checks that data is exactly one msgpack map whose every
// length prefix fits in the bytes that follow it, nested at most maxDepth
// deep, and returns its top-level "v" field.
//
// Why: msgpack/v5 v5.4.x preallocates slices from the length prefix
// without its documented cap (vmihailenco/msgpack#401), so a 15-byte
// message declaring 2^32-1 log lines makes the runtime die of an out of
// memory fatal error, which no recover can catch. Checking every length
// against the remaining bytes first bounds the decoder's allocations by the
// payload size. Reading "v" here lets a receiver report ErrVersion for a
// newer message even when its fields no longer decode, and sees the full
// integer (the decoder silently truncates it to uint8, so v=257 would pass
// as 1).
func scanMessage(data []byte) (wireVersion, error) {
	s := scanner{b: data}
	if len(data) == 0 || !isMap(data[0]) {
		return wireVersion{}, errNotMap
	}
	if err := s.value(0); err != nil {
		return wireVersion{}, fmt.Errorf("at byte %d: %w", s.pos, err)
	}
	if s.pos != len(data) {
		return wireVersion{}, fmt.Errorf("%w at byte %d of %d", errTrailerData, s.pos, len(data))
	}
	return s.version, nil
}

func isMap(c byte) bool { return c&0xf0 == 0x80 || c == 0xde || c == 0xdf }

type scanner struct {
	b       []byte
	pos     int
	version wireVersion
}

// need reserves n more bytes and returns them.
func (s *scanner) need(n uint64) ([]byte, error) {
	if n > uint64(len(s.b)-s.pos) {
		return nil, errTruncated
	}
	out := s.b[s.pos : s.pos+int(n)]
	s.pos += int(n)
	return out, nil
}

// length reads a big-endian length of size bytes.
func (s *scanner) length(size int) (uint64, error) {
	b, err := s.need(uint64(size))
	if err != nil {
		return 0, err
	}
	switch size {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), nil
	default:
		return uint64(binary.BigEndian.Uint32(b)), nil
	}
}

// value walks one msgpack value at the given nesting depth.
func (s *scanner) value(depth int) error {
	cb, err := s.need(1)
	if err != nil {
		return err
	}
	c := cb[0]
	switch {
	case c <= 0x7f, c >= 0xe0, c == 0xc0, c == 0xc2, c == 0xc3: // fixint, nil, bool
		return nil
	case c&0xf0 == 0x80: // fixmap
		return s.container(depth, uint64(c&0x0f), 2)
	case c&0xf0 == 0x90: // fixarray
		return s.container(depth, uint64(c&0x0f), 1)
	case c&0xe0 == 0xa0: // fixstr
		return s.skip(uint64(c & 0x1f))
	}
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		return s.skip(1)
	case 0xcd, 0xd1: // uint16, int16
		return s.skip(2)
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return s.skip(4)
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return s.skip(8)
	case 0xd4: // fixext 1/2/4/8/16: a type byte, then the data
		return s.skip(1 + 1)
	case 0xd5:
		return s.skip(1 + 2)
	case 0xd6:
		return s.skip(1 + 4)
	case 0xd7:
		return s.skip(1 + 8)
	case 0xd8:
		return s.skip(1 + 16)
	case 0xc4, 0xd9: // bin 8, str 8
		return s.sized(1, 0)
	case 0xc5, 0xda: // bin 16, str 16
		return s.sized(2, 0)
	case 0xc6, 0xdb: // bin 32, str 32
		return s.sized(4, 0)
	case 0xc7: // ext 8/16/32: a length, a type byte, then the data
		return s.sized(1, 1)
	case 0xc8:
		return s.sized(2, 1)
	case 0xc9:
		return s.sized(4, 1)
	case 0xdc, 0xde: // array 16, map 16
		n, err := s.length(2)
		if err != nil {
			return err
		}
		return s.container(depth, n, perEntry(c))
	case 0xdd, 0xdf: // array 32, map 32
		n, err := s.length(4)
		if err != nil {
			return err
		}
		return s.container(depth, n, perEntry(c))
	default: // 0xc1 is never used
		return fmt.Errorf("reserved code 0x%02x", c)
	}
}

// perEntry is how many values one entry of an array or map code holds.
func perEntry(c byte) uint64 {
	if c == 0xde || c == 0xdf {
		return 2
	}
	return 1
}

func (s *scanner) skip(n uint64) error {
	_, err := s.need(n)
	return err
}

// sized skips a length-prefixed value: a big-endian length of size bytes,
// extra bytes (the ext type), then length bytes of data.
func (s *scanner) sized(size int, extra uint64) error {
	n, err := s.length(size)
	if err != nil {
		return err
	}
	return s.skip(extra + n)
}

// container walks n entries of per values each (1 for arrays, 2 for maps).
// Every value takes at least one byte, so a count larger than the bytes
// left is a lie, rejected before anything is allocated for it.
func (s *scanner) container(depth int, n uint64, per uint64) error {
	if depth >= maxDepth {
		return errTooDeep
	}
	if n > uint64(len(s.b)-s.pos)/per {
		return fmt.Errorf("%w: %d entries declared, %d bytes left", errTruncated, n, len(s.b)-s.pos)
	}
	for range n {
		keyAt := s.pos
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if per == 1 {
			continue
		}
		valAt := s.pos
		if err := s.value(depth + 1); err != nil {
			return err
		}
		if depth == 0 && isVersionKey(s.b[keyAt:valAt]) {
			s.version = readUint(s.b[valAt:s.pos])
		}
	}
	return nil
}

// isVersionKey reports whether the encoded key is the string "v" (str or
// bin, as the decoder accepts both for field names).
func isVersionKey(k []byte) bool {
	switch {
	case len(k) == 2 && k[0] == 0xa1:
		return k[1] == 'v'
	case len(k) == 3 && (k[0] == 0xd9 || k[0] == 0xc4) && k[1] == 1:
		return k[2] == 'v'
	}
	return false
}

// readUint decodes an encoded msgpack integer; negative numbers and other
// types are found but not ok.
func readUint(b []byte) wireVersion {
	v := wireVersion{found: true}
	c := b[0]
	switch {
	case c <= 0x7f:
		v.ok, v.value = true, uint64(c)
	case c == 0xcc:
		v.ok, v.value = true, uint64(b[1])
	case c == 0xcd:
		v.ok, v.value = true, uint64(binary.BigEndian.Uint16(b[1:]))
	case c == 0xce:
		v.ok, v.value = true, uint64(binary.BigEndian.Uint32(b[1:]))
	case c == 0xcf:
		v.ok, v.value = true, binary.BigEndian.Uint64(b[1:])
	case c == 0xd0 && int8(b[1]) >= 0:
		v.ok, v.value = true, uint64(b[1])
	case c == 0xd1 && int16(binary.BigEndian.Uint16(b[1:])) >= 0:
		v.ok, v.value = true, uint64(binary.BigEndian.Uint16(b[1:]))
	case c == 0xd2 && int32(binary.BigEndian.Uint32(b[1:])) >= 0:
		v.ok, v.value = true, uint64(binary.BigEndian.Uint32(b[1:]))
	case c == 0xd3 && int64(binary.BigEndian.Uint64(b[1:])) >= 0:
		v.ok, v.value = true, binary.BigEndian.Uint64(b[1:])
	}
	return v
}
