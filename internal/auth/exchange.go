package auth

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/wire"
)

// ErrFailed is a proof that failed: a wrong password, an unknown user, a
// secret the method cannot check. Callers answer every one with the same
// 28P01 message, so a client cannot tell which it was.
var ErrFailed = errors.New("auth: password authentication failed")

// ProtocolError is a client that broke the authentication exchange (a
// message of the wrong type, malformed or too long): 08P01.
type ProtocolError struct{ msg string }

func (e *ProtocolError) Error() string { return e.msg }

func protocolErr(format string, args ...any) error {
	return &ProtocolError{msg: fmt.Sprintf(format, args...)}
}

// maxSASL bounds a SASL message from a client; PostgreSQL's own bound for
// authentication packets is about the same.
const maxSASL = 1024

// Exchange is one client's authentication: where to write and read, and
// the secret of the user it claims to be (found false for a user with
// none: it is run against a decoy so that it takes the same work and
// fails the same way).
type Exchange struct {
	W      io.Writer
	R      *wire.Reader
	User   string
	Secret Secret
	Found  bool
	// Decoy keys the fake verifier of unknown users, so that the same
	// unknown name always gets the same salt, as a real one would.
	Decoy []byte
	// Binding is the TLS connection's channel binding (nil without TLS):
	// SCRAM-SHA-256-PLUS is offered with it.
	Binding *scram.ChannelBinding
	// Learned, if set, is told after a successful exchange how pgvalve can
	// log in to a server as this user (backend.Credential): the stored
	// password or md5 hash, or the SCRAM keys the client's proof gave away.
	Learned func(backend.Credential)
}

// learned passes on a credential for the server login.
func (x Exchange) learned(c backend.Credential) {
	if x.Learned != nil && !c.Empty() {
		x.Learned(c)
	}
}

func (x Exchange) stored() backend.Credential { return x.Secret.Credential() }

// Credential is what the secret itself lets pgvalve log in to a server
// with: a password or an md5 hash; a SCRAM verifier alone gives nothing
// (its keys come from a client's proof).
func (s Secret) Credential() backend.Credential {
	switch s.Kind {
	case KindPlain:
		return backend.Credential{Password: s.Plain}
	case KindMD5:
		return backend.Credential{MD5: s.MD5}
	}
	return backend.Credential{}
}

// SCRAM runs SCRAM-SHA-256 (without channel binding) against the stored
// secret; a plain secret is turned into a verifier first, an md5 one
// cannot be checked (ErrFailed, as PostgreSQL).
func (x Exchange) SCRAM() error {
	v, ok := x.verifier()
	server, err := scram.SHA256.NewServer(func(string) (scram.StoredCredentials, error) {
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(v.Salt), Iters: v.Iterations},
			StoredKey:  v.StoredKey, ServerKey: v.ServerKey,
		}, nil
	})
	if err != nil {
		return err
	}
	mechs := []string{"SCRAM-SHA-256"}
	if x.Binding != nil {
		mechs = []string{"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"} // PostgreSQL's order
	}
	if err := x.send(&pgproto3.AuthenticationSASL{AuthMechanisms: mechs}); err != nil {
		return err
	}
	body, err := x.read("SASLInitialResponse")
	if err != nil {
		return err
	}
	var first pgproto3.SASLInitialResponse
	if err := first.Decode(body); err != nil {
		return protocolErr("malformed SASLInitialResponse")
	}
	var c *scram.ServerConversation
	switch {
	case first.AuthMechanism == "SCRAM-SHA-256-PLUS" && x.Binding != nil:
		c = server.NewConversationWithChannelBindingRequired(*x.Binding)
	case first.AuthMechanism == "SCRAM-SHA-256" && x.Binding != nil:
		// Without binding, but a client saying it could bind ('y') while
		// pgvalve offers it is a downgrade, and is refused.
		c = server.NewConversationWithChannelBinding(*x.Binding)
	case first.AuthMechanism == "SCRAM-SHA-256":
		c = server.NewConversation()
	default:
		return protocolErr("client selected an invalid SASL authentication mechanism")
	}
	clientFirst := string(first.Data) // a copy: the next read reuses the buffer
	serverFirst, err := c.Step(clientFirst)
	if err != nil {
		return protocolErr("malformed SCRAM message")
	}
	if err := x.send(&pgproto3.AuthenticationSASLContinue{Data: []byte(serverFirst)}); err != nil {
		return err
	}
	if body, err = x.read("SASLResponse"); err != nil {
		return err
	}
	out, err := c.Step(string(body))
	if err != nil || !c.Valid() || !ok {
		return ErrFailed
	}
	if err := x.send(&pgproto3.AuthenticationSASLFinal{Data: []byte(out)}); err != nil {
		return err
	}
	if x.Secret.Kind != KindSCRAM {
		x.learned(x.stored())
	} else if keys, ok := recoverKeys(v, clientFirst, serverFirst, string(body)); ok {
		x.learned(backend.Credential{SCRAM: keys})
	}
	return nil
}

// verifier is the SCRAM verifier to check against: the stored one, one
// made from a plain password, or a decoy (ok false) that no proof matches.
func (x Exchange) verifier() (Verifier, bool) {
	switch {
	case x.Found && x.Secret.Kind == KindSCRAM:
		return x.Secret.SCRAM, true
	case x.Found && x.Secret.Kind == KindPlain:
		return NewVerifier(x.Secret.Plain, x.decoySalt(), 4096), true
	}
	d := NewVerifier("", x.decoySalt(), 4096)
	rand.Read(d.StoredKey) // no password's proof matches random keys
	return d, false
}

// decoySalt is a salt that depends only on the user name and the decoy key.
func (x Exchange) decoySalt() []byte {
	m := hmac.New(sha256.New, x.Decoy)
	m.Write([]byte(x.User))
	return m.Sum(nil)[:16]
}

// NewVerifier derives PostgreSQL's SCRAM-SHA-256 verifier of password:
// SASLprep'd as PostgreSQL does, or as it is when SASLprep refuses it.
func NewVerifier(password string, salt []byte, iterations int) Verifier {
	client, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		client, _ = scram.SHA256.NewClientUnprepped("", password, "")
	}
	keys := client.GetStoredCredentials(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	return Verifier{Iterations: iterations, Salt: salt, StoredKey: keys.StoredKey, ServerKey: keys.ServerKey}
}

// MD5 runs md5 password authentication. A user whose secret is a SCRAM
// verifier is asked for SCRAM instead, as PostgreSQL does.
func (x Exchange) MD5() error {
	if x.Found && x.Secret.Kind == KindSCRAM {
		return x.SCRAM()
	}
	var salt [4]byte
	rand.Read(salt[:])
	if err := x.send(&pgproto3.AuthenticationMD5Password{Salt: salt}); err != nil {
		return err
	}
	got, err := x.password()
	if err != nil {
		return err
	}
	inner := x.Secret.MD5
	if x.Secret.Kind == KindPlain {
		inner = md5Hex(x.Secret.Plain + x.User)
	}
	want := "md5" + md5Hex(inner+string(salt[:]))
	if !x.Found || x.Secret.Kind == KindSCRAM || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrFailed
	}
	x.learned(x.stored())
	return nil
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Cleartext asks for the password itself and checks it against any kind
// of secret. Only for clients on TLS: the caller checks.
func (x Exchange) Cleartext() error {
	if err := x.send(&pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return err
	}
	pw, err := x.password()
	if err != nil {
		return err
	}
	if !x.Found || !x.Secret.Matches(x.User, pw) {
		return ErrFailed
	}
	if x.Secret.Kind == KindSCRAM {
		x.learned(backend.Credential{SCRAM: keysOf(pw, x.Secret.SCRAM)})
	} else {
		x.learned(x.stored())
	}
	return nil
}

// Matches reports whether pw is the password of user this secret stores.
func (s Secret) Matches(user, pw string) bool {
	switch s.Kind {
	case KindPlain:
		return subtle.ConstantTimeCompare([]byte(s.Plain), []byte(pw)) == 1
	case KindMD5:
		return subtle.ConstantTimeCompare([]byte(s.MD5), []byte(md5Hex(pw+user))) == 1
	case KindSCRAM:
		v := NewVerifier(pw, s.SCRAM.Salt, s.SCRAM.Iterations)
		return subtle.ConstantTimeCompare(v.StoredKey, s.SCRAM.StoredKey) == 1
	}
	return false
}

// password reads a PasswordMessage's password.
func (x Exchange) password() (string, error) {
	body, err := x.read("PasswordMessage")
	if err != nil {
		return "", err
	}
	if len(body) == 0 || body[len(body)-1] != 0 {
		return "", protocolErr("invalid password packet")
	}
	return string(body[:len(body)-1]), nil
}

func (x Exchange) send(m pgproto3.BackendMessage) error {
	_, err := x.W.Write(wire.Append(nil, m))
	return err
}

// read reads the client's next authentication message ('p'), bounded in
// size.
func (x Exchange) read(what string) ([]byte, error) {
	typ, body, err := x.R.ReadMessage()
	if err != nil {
		if _, big := errors.AsType[*wire.ErrTooLarge](err); big {
			return nil, protocolErr("%s too long", what)
		}
		return nil, err
	}
	if typ != 'p' {
		return nil, protocolErr("expected %s, got message type %q", what, typ)
	}
	if len(body) > maxSASL {
		return nil, protocolErr("%s of %d bytes is too long", what, len(body))
	}
	return body, nil
}
