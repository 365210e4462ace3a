package telemetry

import (
	"encoding/binary"
	"math/rand/v2"
)

// fillRandom fills b from math/rand/v2's generator (ChaCha8, safe for
// concurrent use): span ids need uniqueness, not secrecy.
func fillRandom(b []byte) {
	for i := 0; i < len(b); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], rand.Uint64())
		copy(b[i:], w[:])
	}
}
