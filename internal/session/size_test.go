package session

import (
	"testing"
	"unsafe"
)

// Every idle client keeps its Session (issue 14's goal: at most 4 KiB of
// memory per idle client, met with about 100 bytes to spare). The
// allocator rounds a Session up to its size class: at 768 bytes or less
// it takes 768, one byte more and it takes 896.
func TestASessionFitsItsSizeClass(t *testing.T) {
	if size := unsafe.Sizeof(Session{}); size > 768 {
		t.Fatalf("a Session is %d bytes, past the 768-byte size class: each idle client would keep 128 bytes more (see the field order in session.go)", size)
	}
}
