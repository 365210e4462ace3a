package subjects

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Version is the protocol version this package speaks. Every message carries
// it in the "v" field; a receiver rejects messages without one or from a
// newer protocol than it knows.
const Version uint8 = 1

// MaxMessageSize is the largest payload jetworker sends or accepts in one
// message (NATS' default max_payload). Larger payloads are refused with
// CodeTooLarge instead of being cut.
const MaxMessageSize = 1 << 20

// Proto is embedded in every wire message; its one field is the protocol
// version.
type Proto struct {
	V uint8 `msgpack:"v"`
}

func (p *Proto) proto() *Proto { return p }

// Message is a wire message: a struct embedding Proto with a Validate method
// that checks required fields after decoding.
type Message interface {
	proto() *Proto
	Validate() error
}

// Sentinel errors of the codec; a decode error wraps one of them.
var (
	ErrMalformed   = errors.New("subjects: malformed message")
	ErrVersion     = errors.New("subjects: unsupported protocol version")
	ErrInvalid     = errors.New("subjects: invalid message")
	ErrTooLarge    = errors.New("subjects: message too large")
	errNilMessage  = errors.New("subjects: nil message")
	errTrailerData = errors.New("trailing bytes after message")
)

// Marshal encodes m with msgpack, stamping the protocol version. It fails
// with ErrTooLarge when the encoding exceeds MaxMessageSize.
func Marshal(m Message) ([]byte, error) {
	if m == nil {
		return nil, errNilMessage
	}
	m.proto().V = Version
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetSortMapKeys(true) // deterministic bytes for golden tests and dedup
	err := enc.Encode(m)
	b := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %T is %d bytes, limit %d", ErrTooLarge, m, len(b), MaxMessageSize)
	}
	return b, nil
}

// Unmarshal decodes data into m and validates it. Errors wrap ErrTooLarge,
// ErrMalformed (not exactly one msgpack map, a length prefix longer than the
// data, nesting deeper than 32, or wrong field types), ErrVersion (no
// version or a newer one; checked before the fields are decoded) or
// ErrInvalid (a required field is missing or out of range). Unknown fields
// are ignored so that older receivers accept newer minor additions. Decode
// into a fresh value: fields absent from data keep what m held.
func Unmarshal(data []byte, m Message) error {
	if m == nil {
		return errNilMessage
	}
	if len(data) > MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	if len(data) == 0 {
		return fmt.Errorf("%w: empty payload for %T", ErrMalformed, m)
	}
	// Check the shape and the version before decoding: see scanMessage.
	ver, err := scanMessage(data)
	if err != nil {
		return fmt.Errorf("%w: %T: %w", ErrMalformed, m, err)
	}
	switch {
	case !ver.found || ver.ok && ver.value == 0:
		return fmt.Errorf("%w: %T has no version field", ErrVersion, m)
	case !ver.ok:
		return fmt.Errorf("%w: %T has a version that is not a non-negative integer", ErrVersion, m)
	case ver.value > uint64(Version):
		return fmt.Errorf("%w: %T has version %d, this build speaks %d", ErrVersion, m, ver.value, Version)
	}
	if err := msgpack.NewDecoder(bytes.NewReader(data)).Decode(m); err != nil {
		return fmt.Errorf("%w: %T: %w", ErrMalformed, m, err)
	}
	if err := m.Validate(); err != nil {
		// The validation message names the field; it reaches people
		// (CLI, client errors), so no Go type name here.
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// BatchBytes is the budget for the items of one batch message: half the
// message limit, so that per-item estimates may be rough.
const BatchBytes = MaxMessageSize / 2

// Fit returns how many of the first items fit in one batch message: at
// most max items whose sizes (as estimated by size) add up to BatchBytes;
// at least one, so that an oversized item is refused visibly by Marshal
// rather than stuck.
func Fit(n, maxItems int, size func(i int) int) int {
	total := 0
	for i := 0; i < n && i < maxItems; i++ {
		total += size(i)
		if total > BatchBytes && i > 0 {
			return i
		}
	}
	return min(n, maxItems)
}
