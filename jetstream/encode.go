package jetstream

import (
	"bytes"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// encodeCompact encodes a stored record (an instance, a batch record, an
// index chunk) without its empty fields: readers decode a missing field
// as its zero value, and most of a finished short instance's fields are
// zero (its job's limits, its selection, its retries), so this halves a
// record (749 → ~400 bytes for a no-op run). Wire messages keep every key
// (subjects.Marshal); only what is stored is compact. The encoders are
// pooled: this is the hot path of the API.
func encodeCompact(v any) ([]byte, error) {
	e := encoders.Get().(*compactEncoder)
	defer encoders.Put(e)
	e.buf.Reset()
	if err := e.enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(e.buf.Bytes()), nil
}

type compactEncoder struct {
	buf bytes.Buffer
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &compactEncoder{}
	e.enc = msgpack.NewEncoder(&e.buf)
	e.enc.SetOmitEmpty(true)
	return e
}}
