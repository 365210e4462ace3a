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
	var b []byte
	var err error
	if fe, ok := m.(fastEncoder); ok {
		b, err = fe.appendTo(make([]byte, 0, 256))
	} else {
		var buf bytes.Buffer
		enc := msgpack.NewEncoder(&buf)
		enc.SetSortMapKeys(true) // deterministic bytes for golden tests and dedup
		err = enc.Encode(m)
		b = buf.Bytes()
	}
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
// into a fresh value: fields absent from data keep what m held. The error
// is a *DecodeError (errors.As) whose Describe names the field at fault.
func Unmarshal(data []byte, m Message) error {
	if m == nil {
		return errNilMessage
	}
	fail := func(kind error, reason string, cause error) error {
		return &DecodeError{Kind: kind, Type: fmt.Sprintf("%T", m), Reason: reason, Err: cause}
	}
	if len(data) > MaxMessageSize {
		return fail(ErrTooLarge, fmt.Sprintf("the message is %d bytes, the limit is %d", len(data), MaxMessageSize), nil)
	}
	if len(data) == 0 {
		return fail(ErrMalformed, "the message is empty", nil)
	}
	// Check the shape and the version before decoding: see scanMessage.
	ver, err := scanMessage(data)
	if err != nil {
		return fail(ErrMalformed, "the message is not one msgpack map: "+err.Error(), err)
	}
	switch {
	case !ver.found || ver.ok && ver.value == 0:
		return fail(ErrVersion, `the message has no protocol version (field "v")`, nil)
	case !ver.ok:
		return fail(ErrVersion, `the protocol version (field "v") is not a non-negative integer`, nil)
	case ver.value > uint64(Version):
		return fail(ErrVersion, fmt.Sprintf("the message speaks protocol version %d, this build speaks %d", ver.value, Version), nil)
	}
	if fd, ok := m.(fastDecoder); ok {
		err = fd.decodeFrom(&reader{b: data})
	} else {
		err = msgpack.NewDecoder(bytes.NewReader(data)).Decode(m)
	}
	if err != nil {
		field, reason := locateField(data, m)
		return &DecodeError{Kind: ErrMalformed, Type: fmt.Sprintf("%T", m), Field: field, Reason: reason, Err: err}
	}
	if err := m.Validate(); err != nil {
		return fail(ErrInvalid, err.Error(), err)
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
