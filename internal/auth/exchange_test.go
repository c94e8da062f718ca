package auth

import (
	"bytes"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/wire"
)

func clientBytes(msgs ...pgproto3.FrontendMessage) []byte {
	var out []byte
	for _, m := range msgs {
		out, _ = m.Encode(out)
	}
	return out
}

// FuzzExchanges: whatever a client sends in place of its answers, every
// method ends with an error (a wrong proof or a broken exchange), never a
// panic, never a login, and never a credential taught.
func FuzzExchanges(f *testing.F) {
	f.Add(clientBytes(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abc")},
		&pgproto3.SASLResponse{Data: []byte("c=biws,r=abc,p=AAAA")}))
	f.Add(clientBytes(&pgproto3.PasswordMessage{Password: "md5" + md5Hex("x")}))
	f.Add(clientBytes(&pgproto3.Query{String: "select 1"}))
	f.Add([]byte{'p', 0, 0, 0, 4})
	sec, _ := ParseSecret(pencil)
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, found := range []bool{true, false} {
			for name, run := range map[string]func(Exchange) error{"scram": Exchange.SCRAM, "md5": Exchange.MD5, "cleartext": Exchange.Cleartext} {
				learned := false
				x := Exchange{W: io.Discard, R: wire.NewReader(bytes.NewReader(in), 4096, 1<<20),
					User: "carol", Secret: sec, Found: found, Decoy: []byte("k"),
					Learned: func(backend.Credential) { learned = true }}
				err := run(x)
				if learned && err != nil {
					t.Fatalf("%s failed (%v) and still taught a credential", name, err)
				}
				if err == nil && (name != "cleartext" || !found || !bytes.Contains(in, []byte("pencil\x00"))) {
					t.Fatalf("%s logged in on %q", name, in)
				}
			}
		}
	})
}
