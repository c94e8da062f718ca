package wire

import "sync"

// bufPool shares read buffers of DefaultBufferSize between connections,
// so that only the connections reading at the moment hold one.
var bufPool = sync.Pool{New: func() any { return new([DefaultBufferSize]byte) }}

// getBuf takes a buffer of DefaultBufferSize from the pool.
func getBuf() []byte { return bufPool.Get().(*[DefaultBufferSize]byte)[:] }

// putBuf gives a buffer of DefaultBufferSize back to the pool. Under the
// race detector it is poisoned first, so that a slice still pointing into
// it reads garbage rather than what the next connection reads: the tests
// run under it and would see another client's bytes as a wrong answer.
func putBuf(buf []byte) {
	poison(buf)
	bufPool.Put((*[DefaultBufferSize]byte)(buf))
}
