package frontend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/session"
)

// FuzzFrontDoor drives the whole front door (SSLRequest, GSSENCRequest,
// CancelRequest, startup, negotiation and each authentication method)
// with whatever a client may send, starting from the bytes real clients
// sent (testdata/fuzz/FuzzFrontDoor, recorded by the app's
// TestRecordLoginCorpus). Whatever the bytes, the door ends, never
// panics, and lets nobody past authentication: no input can know the
// password the server side of SCRAM or md5 asks about.
func FuzzFrontDoor(f *testing.F) {
	f.Add([]byte{0, 0, 0, 8, 4, 210, 22, 47}) // SSLRequest, then nothing
	users, err := auth.ParseUserlist(strings.NewReader(`"carol" "an unguessable password 8c1f"`+"\n"), "userlist.txt")
	if err != nil {
		f.Fatal(err)
	}
	modes := []config.AuthMode{config.AuthSCRAM, config.AuthMD5, config.AuthPlain, config.AuthCert, config.AuthPassthrough}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, mode := range modes {
			if admitted := frontDoor(t, mode, users, in); admitted {
				t.Fatalf("%s let a client in on %q", mode, in)
			}
		}
	})
}

// frontDoor runs one front door on in and reports whether the client got
// past authentication.
func frontDoor(t *testing.T, mode config.AuthMode, users *auth.Userlist, in []byte) bool {
	var admitted atomic.Bool
	cfg := &Config{
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth:   mode,
		Relay:  &session.Env{},
		Lookup: func(db, user string) (*session.Route, bool) { return &session.Route{}, db != "nosuchdb" },
		Verify: func(context.Context, string, string, string) error { return errors.New("wrong password") },
		Secret: func(_ context.Context, _, user string) (auth.Secret, bool, error) {
			s, ok := users.Lookup(user)
			return s, ok, nil
		},
		Decoy: []byte("decoy"),
	}
	cfg.Relay.SetLive(session.Live{LoginTimeout: 5 * time.Second, MaxMessageSize: 1 << 20})
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		Serve(context.Background(), cfg, server, nil, Gate{Admit: func() bool { admitted.Store(true); return false }}, nil)
	}()
	go func() { _, _ = io.Copy(io.Discard, client) }()
	_, _ = client.Write(in) // fails once the door has closed
	client.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: the front door did not end on %q", mode, in)
	}
	return admitted.Load()
}

// The fuzz check can fail: a trust login gets past authentication.
func TestTheFrontDoorHarnessSeesALogin(t *testing.T) {
	startup := []byte("\x00\x00\x00\x14\x00\x03\x00\x00user\x00carol\x00\x00")
	if !frontDoor(t, config.AuthTrust, nil, startup) {
		t.Fatal("a trust login was not seen getting past authentication")
	}
	if frontDoor(t, config.AuthSCRAM, nil, startup) {
		t.Fatal("a SCRAM login without any answer got past authentication")
	}
}
