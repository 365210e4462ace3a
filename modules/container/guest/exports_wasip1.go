//go:build wasip1

package guest

import (
	"encoding/json"
	"errors"
	"unsafe"
)

// The buffers the host reads and writes: kept referenced so that the
// collector (which does not move objects) keeps them where the host
// looks.
var inBuf, outBuf, errBuf []byte

//go:wasmexport jw_alloc
func jwAlloc(n uint32) uint32 {
	if uint32(cap(inBuf)) < n {
		inBuf = make([]byte, n)
	}
	inBuf = inBuf[:n]
	if n == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(&inBuf[0])))
}

//go:wasmexport jw_manifest
func jwManifest() uint64 {
	b, _ := json.Marshal(manifest())
	return reply(b)
}

//go:wasmexport jw_call
func jwCall(n uint32) uint64 {
	if uint64(n) > uint64(cap(inBuf)) {
		return replyError("jw_call: the call is longer than the buffer jw_alloc gave")
	}
	rep := handle(inBuf[:n])
	outBuf, _ = rep.AppendBinary(outBuf[:0]) // the host has read the last reply
	return reply(outBuf)
}

func replyError(msg string) uint64 {
	rep := Reply{Error: msg}
	outBuf, _ = rep.AppendBinary(outBuf[:0])
	return reply(outBuf)
}

// reply keeps b and returns its address and length packed (address in
// the high 32 bits).
func reply(b []byte) uint64 {
	outBuf = b
	if len(b) == 0 {
		return 0
	}
	return uint64(uintptr(unsafe.Pointer(&outBuf[0])))<<32 | uint64(len(b))
}

//go:wasmimport jetworker log
func importLog(ptr, n uint32)

//go:wasmimport jetworker map
func importMap(ptr, n, errPtr, errCap uint32) uint32

func hostLog(line string) {
	if line == "" {
		return
	}
	b := []byte(line)
	importLog(uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)))
}

func hostMap(req []byte) error {
	if cap(errBuf) < 1024 {
		errBuf = make([]byte, 1024)
	}
	errBuf = errBuf[:cap(errBuf)]
	n := importMap(uint32(uintptr(unsafe.Pointer(&req[0]))), uint32(len(req)), uint32(uintptr(unsafe.Pointer(&errBuf[0]))), uint32(len(errBuf)))
	if n == 0 {
		return nil
	}
	return errors.New(string(errBuf[:n]))
}
