package auth

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/goleak"

	"github.com/pgvalve/pgvalve/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func encode(m pgproto3.FrontendMessage) []byte {
	b, err := m.Encode(nil)
	if err != nil {
		panic(err)
	}
	return b
}

func TestRequestPasswordAsksInCleartextAndReadsTheAnswer(t *testing.T) {
	cases := []struct {
		name    string
		reply   []byte
		want    string
		wantErr bool
	}{
		{"a password", encode(&pgproto3.PasswordMessage{Password: "s3cret"}), "s3cret", false},
		{"an empty password", encode(&pgproto3.PasswordMessage{Password: ""}), "", true},
		{"not a password message", encode(&pgproto3.Query{String: "select 1"}), "", true},
		{"missing terminator", []byte{'p', 0, 0, 0, 7, 'a', 'b', 'c'}, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			asked := make(chan []byte, 1)
			go func() {
				buf := make([]byte, 64)
				n, _ := client.Read(buf)
				asked <- buf[:n]
				_, _ = client.Write(tc.reply)
			}()
			pw, err := RequestPassword(server, wire.NewReader(server, 256, 1<<20))
			if got := <-asked; !bytes.Equal(got, wire.Append(nil, &pgproto3.AuthenticationCleartextPassword{})) {
				t.Fatalf("sent %q, want AuthenticationCleartextPassword", got)
			}
			if (err != nil) != tc.wantErr || pw != tc.want {
				t.Fatalf("got %q, %v", pw, err)
			}
			if tc.name == "an empty password" && !errors.Is(err, ErrNoPassword) {
				t.Fatalf("want ErrNoPassword, got %v", err)
			}
		})
	}
}

func TestPasswordsAreTrustedOnlyWhileFresh(t *testing.T) {
	p := NewPasswords(2 * time.Second)
	t0 := time.Unix(1000, 0)
	if p.Matches("db/u", "pw", t0) {
		t.Fatal("nothing accepted yet")
	}
	p.Accept("db/u", "pw", t0)
	cases := []struct {
		pw    string
		at    time.Duration
		match bool
	}{
		{"pw", 0, true},
		{"pw", 1999 * time.Millisecond, true},
		{"pw", 2 * time.Second, false},
		{"other", time.Second, false},
	}
	for _, tc := range cases {
		if got := p.Matches("db/u", tc.pw, t0.Add(tc.at)); got != tc.match {
			t.Fatalf("Matches(%q, +%s) = %v, want %v", tc.pw, tc.at, got, tc.match)
		}
	}
	if got, ok := p.Get("db/u"); !ok || got != "pw" {
		t.Fatalf("Get = %q %v: the pool still dials with it after it goes stale", got, ok)
	}
	p.Forget("db/u", "other")
	if _, ok := p.Get("db/u"); !ok {
		t.Fatal("Forget of a different password must keep the accepted one")
	}
	p.Forget("db/u", "pw")
	if _, ok := p.Get("db/u"); ok {
		t.Fatal("Forget must drop a refused password")
	}
}
