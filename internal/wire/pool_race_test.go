//go:build race

package wire

import (
	"bytes"
	"testing"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// Under the race detector a released buffer is poisoned, so that a body
// still held past Release reads garbage, never the next connection's
// bytes: the suite's real clients then see a wrong answer.
func TestABodyHeldPastReleaseReadsPoison(t *testing.T) {
	r := NewReader(bytes.NewReader(testutil.Message('Q', "secret\x00")), DefaultBufferSize, 1<<20)
	_, body, err := r.ReadMessage()
	if err != nil || string(body) != "secret\x00" {
		t.Fatalf("ReadMessage = %q, %v", body, err)
	}
	r.Release()
	if !bytes.Equal(body, bytes.Repeat([]byte{0xDB}, len(body))) {
		t.Fatalf("the body held past Release still reads %q", body)
	}
}
