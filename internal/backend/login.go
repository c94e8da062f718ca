package backend

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/xdg-go/scram"
)

// Credential is how pgvalve logs in to a server as a user without knowing
// the password: the md5 hash PostgreSQL stores, or the SCRAM keys a
// client's own proof gave away (a SCRAM proof is ClientKey hidden under a
// signature the verifier's StoredKey can take off). Neither is a password;
// each works only where the server stores the same secret.
type Credential struct {
	Password string     // a cleartext password, when one is stored
	MD5      string     // hex(md5(password + user)), for md5 servers
	SCRAM    *SCRAMKeys // for SCRAM servers holding the same verifier
}

// Empty reports whether c holds nothing to log in with.
func (c Credential) Empty() bool { return c.Password == "" && c.MD5 == "" && c.SCRAM == nil }

// SCRAMKeys are a SCRAM-SHA-256 client's keys for one verifier: its salt
// and iteration count, ClientKey (proves the client) and ServerKey (checks
// the server's answer).
type SCRAMKeys struct {
	Salt                 []byte
	Iterations           int
	ClientKey, ServerKey []byte
}

// maxLoginMessage bounds a server message read while pgvalve answers the
// server's authentication itself.
const maxLoginMessage = 1 << 20

// keyedLogin answers the server's authentication requests with a
// Credential, below pgconn: pgconn sends the startup packet and reads the
// rest of the login as usual, but the authentication requests never reach
// it, only the AuthenticationOk that ends them. It is pgconn's net.Conn
// until the login is over; then the backend unwraps it (Unwrap).
type keyedLogin struct {
	net.Conn
	cred    Credential
	user    string
	binding string // libpq's channel_binding: prefer, require or disable
	done    bool   // AuthenticationOk seen: reads go straight through
	pending []byte // a message for pgconn
	sc      *scramClient
}

// Read hands pgconn the server's messages, except the authentication
// exchange, which keyedLogin answers itself.
func (k *keyedLogin) Read(p []byte) (int, error) {
	for !k.done && len(k.pending) == 0 {
		if err := k.step(); err != nil {
			return 0, err
		}
	}
	if len(k.pending) > 0 {
		n := copy(p, k.pending)
		k.pending = k.pending[n:]
		return n, nil
	}
	return k.Conn.Read(p)
}

// Unwrap is the connection underneath once the login is over, so the relay
// keeps its raw socket; nil while a message is still held for pgconn.
func (k *keyedLogin) Unwrap() net.Conn {
	if !k.done || len(k.pending) > 0 {
		return nil
	}
	return k.Conn
}

// step reads one server message: an authentication request is answered,
// anything else (AuthenticationOk, an ErrorResponse, ...) is pgconn's.
func (k *keyedLogin) step() error {
	msg, err := readLoginMessage(k.Conn)
	if err != nil {
		return err
	}
	if msg[0] != 'R' || len(msg) < 9 {
		k.pending = msg
		return nil
	}
	body := msg[5:]
	switch code := binary.BigEndian.Uint32(body); code {
	case 0: // AuthenticationOk
		k.done, k.pending = true, msg
		return nil
	case 5: // AuthenticationMD5Password
		var m pgproto3.AuthenticationMD5Password
		if err := m.Decode(body); err != nil {
			return err
		}
		return k.md5(m.Salt)
	case 10:
		var m pgproto3.AuthenticationSASL
		if err := m.Decode(body); err != nil {
			return err
		}
		return k.scramStart(m.AuthMechanisms)
	case 11:
		if k.sc == nil {
			return loginRefused(k.user, "the server sent SASLContinue out of turn")
		}
		return k.scramProof(body[4:])
	case 12:
		if k.sc == nil || k.sc.serverSig == nil {
			return loginRefused(k.user, "the server sent SASLFinal out of turn")
		}
		return k.sc.checkServer(k.user, body[4:])
	case 3:
		return loginRefused(k.user, "the server asks for a cleartext password, and pgvalve holds only a hash of it (put the password in the upstream URL or auth_file)")
	default:
		return loginRefused(k.user, fmt.Sprintf("the server asks for an authentication method pgvalve cannot answer with a stored hash (code %d)", code))
	}
}

func (k *keyedLogin) md5(salt [4]byte) error {
	if k.cred.MD5 == "" {
		return loginRefused(k.user, "the server asks for md5, and pgvalve holds this user's SCRAM keys only: store the same kind of secret on both sides")
	}
	sum := md5.Sum([]byte(k.cred.MD5 + string(salt[:])))
	return k.send(&pgproto3.PasswordMessage{Password: "md5" + hex.EncodeToString(sum[:])})
}

func (k *keyedLogin) send(m pgproto3.FrontendMessage) error {
	buf, err := m.Encode(nil)
	if err != nil {
		return err
	}
	_, err = k.Conn.Write(buf)
	return err
}

// readLoginMessage reads one whole message, header included, reading no
// byte past it: what follows belongs to pgconn.
func readLoginMessage(r io.Reader) ([]byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr[1:]))
	if n < 4 || n > maxLoginMessage {
		return nil, fmt.Errorf("backend: login message %q of %d bytes", hdr[0], n)
	}
	msg := make([]byte, 1+n)
	copy(msg, hdr[:])
	_, err := io.ReadFull(r, msg[5:])
	return msg, err
}

// loginRefused is a login pgvalve cannot complete with what it holds: a
// FATAL 28000, so the pool treats it as the server refusing the login
// (not as an outage) and the client reads why.
func loginRefused(user, why string) error {
	return &pgconn.PgError{Severity: "FATAL", Code: "28000",
		Message: fmt.Sprintf("pgvalve cannot log in to the server as %q: %s", user, why)}
}

// scramClient is the client side of one SCRAM-SHA-256 exchange run with
// SCRAMKeys instead of a password.
type scramClient struct {
	keys      *SCRAMKeys
	gs2       string // the GS2 header: n,, / y,, / p=tls-server-end-point,,
	cbData    []byte
	nonce     string
	bare      string // client-first-message-bare
	serverSig []byte // what the server's final message must carry
}

// scramStart picks the mechanism (with channel binding when the server is
// on TLS and offers it, as libpq's channel_binding=prefer) and sends the
// client-first message.
func (k *keyedLogin) scramStart(mechs []string) error {
	if k.cred.SCRAM == nil {
		return loginRefused(k.user, "the server asks for SCRAM, and pgvalve holds only this user's md5 hash: store the same kind of secret on both sides")
	}
	sc := &scramClient{keys: k.cred.SCRAM, gs2: "n,,"}
	mech := "SCRAM-SHA-256"
	if tc, ok := k.Conn.(*tls.Conn); ok && k.binding != "disable" {
		sc.gs2 = "y,,"
		state := tc.ConnectionState()
		if cb, err := scram.NewTLSServerEndpointBinding(&state); err == nil && slices.Contains(mechs, "SCRAM-SHA-256-PLUS") {
			mech, sc.gs2, sc.cbData = "SCRAM-SHA-256-PLUS", "p=tls-server-end-point,,", cb.Data
		}
	}
	if k.binding == "require" && sc.cbData == nil {
		return loginRefused(k.user, "channel_binding=require, and the server offers no SCRAM-SHA-256-PLUS")
	}
	if mech == "SCRAM-SHA-256" && !slices.Contains(mechs, mech) {
		return loginRefused(k.user, "the server offers no SCRAM-SHA-256")
	}
	var n [18]byte
	_, _ = rand.Read(n[:])
	sc.nonce = base64.StdEncoding.EncodeToString(n[:])
	sc.bare = "n=,r=" + sc.nonce // PostgreSQL takes the user from the startup packet
	k.sc = sc
	return k.send(&pgproto3.SASLInitialResponse{AuthMechanism: mech, Data: []byte(sc.gs2 + sc.bare)})
}

// scramProof answers the server-first message with the proof the keys
// make: ClientKey XOR HMAC(H(ClientKey), AuthMessage).
func (k *keyedLogin) scramProof(serverFirst []byte) error {
	sc := k.sc
	attrs := scramAttrs(string(serverFirst))
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	iters, _ := strconv.Atoi(attrs["i"])
	if err != nil || !strings.HasPrefix(attrs["r"], sc.nonce) || len(attrs["r"]) == len(sc.nonce) {
		return loginRefused(k.user, "malformed SCRAM server-first message")
	}
	if !bytes.Equal(salt, sc.keys.Salt) || iters != sc.keys.Iterations {
		return loginRefused(k.user, "the server's SCRAM verifier has another salt or iteration count than the one the client proved itself against: give the server and auth_file (or auth_query) the same verifier")
	}
	final := "c=" + base64.StdEncoding.EncodeToString(append([]byte(sc.gs2), sc.cbData...)) + ",r=" + attrs["r"]
	authMsg := sc.bare + "," + string(serverFirst) + "," + final
	stored := sha256.Sum256(sc.keys.ClientKey)
	proof := hmacSum(stored[:], authMsg)
	for i := range proof {
		proof[i] ^= sc.keys.ClientKey[i]
	}
	sc.serverSig = hmacSum(sc.keys.ServerKey, authMsg)
	return k.send(&pgproto3.SASLResponse{Data: []byte(final + ",p=" + base64.StdEncoding.EncodeToString(proof))})
}

// checkServer checks the server's signature: a server that cannot sign
// does not know the verifier, and is not the server.
func (sc *scramClient) checkServer(user string, serverFinal []byte) error {
	sig, err := base64.StdEncoding.DecodeString(scramAttrs(string(serverFinal))["v"])
	if err != nil || subtle.ConstantTimeCompare(sig, sc.serverSig) != 1 {
		return loginRefused(user, "the server's SCRAM signature is wrong")
	}
	return nil
}

func hmacSum(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// scramAttrs splits a SCRAM message into its a=value attributes.
func scramAttrs(s string) map[string]string {
	out := make(map[string]string)
	for _, kv := range strings.Split(s, ",") {
		if len(kv) >= 2 && kv[1] == '=' {
			out[kv[:1]] = kv[2:]
		}
	}
	return out
}
