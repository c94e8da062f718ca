package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// scramPeer is a real SCRAM client (xdg-go/scram) on the other end of an
// Exchange: each server message written to it is answered on the pipe the
// exchange reads.
type scramPeer struct {
	conv *scram.ClientConversation
	out  *io.PipeWriter
}

func (p *scramPeer) Write(b []byte) (int, error) {
	var reply pgproto3.FrontendMessage
	switch m := decodeBackend(b).(type) {
	case *pgproto3.AuthenticationSASL:
		first, _ := p.conv.Step("")
		reply = &pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte(first)}
	case *pgproto3.AuthenticationSASLContinue:
		final, _ := p.conv.Step(string(m.Data))
		reply = &pgproto3.SASLResponse{Data: []byte(final)}
	case *pgproto3.AuthenticationCleartextPassword:
		reply = &pgproto3.PasswordMessage{Password: "correct horse"}
	}
	if reply != nil {
		buf, _ := reply.Encode(nil)
		go p.out.Write(buf) // the exchange reads it after this write returns
	}
	return len(b), nil
}

func decodeBackend(b []byte) pgproto3.BackendMessage {
	fe := pgproto3.NewFrontend(bytes.NewReader(b), io.Discard)
	m, _ := fe.Receive()
	return m
}

// login runs one exchange of a client knowing "correct horse" against
// secret and returns what it taught pgvalve.
func login(t *testing.T, secret Secret, run func(Exchange) error) (backend.Credential, error) {
	t.Helper()
	client, err := scram.SHA256.NewClient("", "correct horse", "")
	if err != nil {
		t.Fatal(err)
	}
	r, w := io.Pipe()
	defer r.Close()
	var got backend.Credential
	x := Exchange{W: &scramPeer{conv: client.NewConversation(), out: w}, R: wire.NewReader(r, 4096, 1<<20),
		User: "carol", Secret: secret, Found: true, Decoy: []byte("k"),
		Learned: func(c backend.Credential) { got = c }}
	return got, run(x)
}

// wantKeys are the keys RFC 5802 derives from the password and v's salt.
func wantKeys(t *testing.T, v Verifier) []byte {
	salted, err := pbkdf2.Key(sha256.New, "correct horse", v.Salt, v.Iterations, 32)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, salted)
	m.Write([]byte("Client Key"))
	return m.Sum(nil)
}

func TestASCRAMLoginTeachesTheClientKeyNotThePassword(t *testing.T) {
	v := NewVerifier("correct horse", []byte("0123456789abcdef"), 4096)
	for name, run := range map[string]func(Exchange) error{"scram": Exchange.SCRAM, "cleartext": Exchange.Cleartext} {
		cred, err := login(t, Secret{Kind: KindSCRAM, SCRAM: v}, run)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cred.Password != "" || cred.SCRAM == nil {
			t.Fatalf("%s taught %+v, want SCRAM keys and no password", name, cred)
		}
		if !bytes.Equal(cred.SCRAM.ClientKey, wantKeys(t, v)) || !bytes.Equal(cred.SCRAM.ServerKey, v.ServerKey) ||
			!bytes.Equal(cred.SCRAM.Salt, v.Salt) || cred.SCRAM.Iterations != v.Iterations {
			t.Errorf("%s: recovered keys differ from the password's", name)
		}
	}
}

func TestAFailedLoginTeachesNothing(t *testing.T) {
	v := NewVerifier("another password", []byte("0123456789abcdef"), 4096)
	cred, err := login(t, Secret{Kind: KindSCRAM, SCRAM: v}, Exchange.SCRAM)
	if err == nil || !cred.Empty() {
		t.Fatalf("wrong password: err %v, learned %+v", err, cred)
	}
}

func TestAPlainSecretTeachesItself(t *testing.T) {
	cred, err := login(t, Secret{Kind: KindPlain, Plain: "correct horse"}, Exchange.SCRAM)
	if err != nil || cred.Password != "correct horse" {
		t.Fatalf("err %v, learned %+v", err, cred)
	}
}
