package subjects

import (
	"bytes"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// DecodeLoose decodes one msgpack value of any shape into plain Go values,
// for tools that show messages without knowing their type (`jetworker
// trace`) and for stored entries that are not messages (task records):
// maps become map[string]any, arrays []any, str string, bin []byte,
// integers int64 or uint64, floats float64.
//
// It checks what Unmarshal checks before decoding (at most MaxMessageSize
// bytes, every length prefix truthful, nesting at most 32 deep, nothing
// after the value), so that a lying prefix cannot make the decoder
// allocate; unlike Unmarshal it accepts any top-level value and does not
// look at the version or any field. Errors wrap ErrTooLarge or
// ErrMalformed (also for a map whose keys are not strings).
func DecodeLoose(data []byte) (any, error) {
	if len(data) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(data), MaxMessageSize)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	s := scanner{b: data}
	if err := s.value(0); err != nil {
		return nil, fmt.Errorf("%w: at byte %d: %w", ErrMalformed, s.pos, err)
	}
	if s.pos != len(data) {
		return nil, fmt.Errorf("%w: %w at byte %d of %d", ErrMalformed, errTrailerData, s.pos, len(data))
	}
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	dec.UseLooseInterfaceDecoding(true)
	v, err := dec.DecodeInterface()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return v, nil
}
