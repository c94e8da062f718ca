//go:build race

package wire

import (
	"runtime"
	"unsafe"
)

// The race detector does not see what a raw system call reads or writes;
// tell it, as package syscall does for its own calls.

func raceRead(p []byte)  { runtime.RaceReadRange(unsafe.Pointer(&p[0]), len(p)) }
func raceWrite(p []byte) { runtime.RaceWriteRange(unsafe.Pointer(&p[0]), len(p)) }

// poison overwrites a released buffer (see putBuf).
func poison(buf []byte) {
	for i := range buf {
		buf[i] = 0xDB
	}
}
