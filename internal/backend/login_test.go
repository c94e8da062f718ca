package backend_test

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// role creates a login role with password, stored the way encryption
// ('scram-sha-256' or 'md5') says, and returns what pg_authid keeps.
func role(t *testing.T, password, encryption string) (name, stored string) {
	t.Helper()
	su := superuser(t)
	ctx := testutil.Context(t)
	name = unique("keyed")
	if _, err := su.Exec(ctx, "set password_encryption = "+quote(encryption)); err != nil {
		t.Fatal(err)
	}
	if _, err := su.Exec(ctx, "create role "+name+" login password "+quote(password)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = superuser(t).Exec(testutil.Context(t), "drop role if exists "+name) })
	if err := su.QueryRow(ctx, "select rolpassword from pg_authid where rolname = $1", name).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	return name, stored
}

// keysFor derives, as RFC 5802 says, the SCRAM keys a client that knows
// password has for the verifier PostgreSQL stored.
func keysFor(t *testing.T, verifier, password string) *backend.SCRAMKeys {
	t.Helper()
	// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
	parts := strings.FieldsFunc(strings.TrimPrefix(verifier, "SCRAM-SHA-256$"), func(r rune) bool { return r == '$' || r == ':' })
	iters, _ := strconv.Atoi(parts[0])
	salt, _ := base64.StdEncoding.DecodeString(parts[1])
	salted, err := pbkdf2.Key(sha256.New, password, salt, iters, 32)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, s string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(s))
		return m.Sum(nil)
	}
	return &backend.SCRAMKeys{Salt: salt, Iterations: iters, ClientKey: mac(salted, "Client Key"), ServerKey: mac(salted, "Server Key")}
}

func keyedConfig(user string, cred backend.Credential) backend.Config {
	cfg := tcpConfig()
	cfg.User, cfg.Password, cfg.Cred = user, "", cred
	return cfg
}

func TestDialLogsInWithScramKeysWithoutThePassword(t *testing.T) {
	name, verifier := role(t, "correct horse", "scram-sha-256")
	c := dialWith(t, keyedConfig(name, backend.Credential{SCRAM: keysFor(t, verifier, "correct horse")}))
	mustExec(t, c, "select 1")
	if got := c.Param("session_authorization"); got != name {
		t.Errorf("logged in as %q, want %q", got, name)
	}
}

func TestDialWithTheKeysOfAnotherPasswordIsRefusedByTheServer(t *testing.T) {
	name, verifier := role(t, "correct horse", "scram-sha-256")
	_, err := backend.Dial(testutil.Context(t), keyedConfig(name, backend.Credential{SCRAM: keysFor(t, verifier, "wrong horse")}))
	if pgCode(err) != "28P01" {
		t.Fatalf("Dial with wrong keys: %v, want the server's 28P01", err)
	}
}

func TestDialWithKeysForAnotherVerifierSaysTheVerifiersMustMatch(t *testing.T) {
	name, _ := role(t, "correct horse", "scram-sha-256")
	// The same password, another salt: what auth_file holds when it was
	// made apart from the server's verifier.
	_, other := role(t, "correct horse", "scram-sha-256")
	_, err := backend.Dial(testutil.Context(t), keyedConfig(name, backend.Credential{SCRAM: keysFor(t, other, "correct horse")}))
	if pgCode(err) != "28000" || !strings.Contains(err.Error(), "same verifier") {
		t.Fatalf("Dial with another verifier's keys: %v, want 28000 naming the same verifier", err)
	}
}

func TestDialLogsInToAnMD5ServerWithTheStoredHash(t *testing.T) {
	name, stored := role(t, "tr0ub4dor", "md5")
	if !strings.HasPrefix(stored, "md5") {
		t.Fatalf("role stored as %.3s..., want md5", stored)
	}
	c := dialWith(t, keyedConfig(name, backend.Credential{MD5: strings.TrimPrefix(stored, "md5")}))
	mustExec(t, c, "select 1")

	sum := md5.Sum([]byte("wrong" + name))
	_, err := backend.Dial(testutil.Context(t), keyedConfig(name, backend.Credential{MD5: hex.EncodeToString(sum[:])}))
	if pgCode(err) != "28P01" {
		t.Fatalf("Dial with another md5 hash: %v, want the server's 28P01", err)
	}
}

func TestDialWithTheWrongKindOfSecretSaysWhichTheServerWants(t *testing.T) {
	scramRole, verifier := role(t, "pw", "scram-sha-256")
	md5Role, _ := role(t, "pw", "md5")
	for _, tc := range []struct {
		user string
		cred backend.Credential
		want string
	}{
		{scramRole, backend.Credential{MD5: strings.Repeat("0", 32)}, "asks for SCRAM"},
		{md5Role, backend.Credential{SCRAM: keysFor(t, verifier, "pw")}, "asks for md5"},
	} {
		_, err := backend.Dial(testutil.Context(t), keyedConfig(tc.user, tc.cred))
		if pgCode(err) != "28000" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial as %s: %v, want 28000 saying the server %s", tc.user, err, tc.want)
		}
	}
}

func TestDialPrefersTheConfiguredPasswordToACredential(t *testing.T) {
	cfg := tcpConfig() // the right password
	cfg.Cred = backend.Credential{MD5: strings.Repeat("0", 32)}
	mustExec(t, dialWith(t, cfg), "select 1")

	cfg.Password, cfg.Cred = "", backend.Credential{Password: cluster.Password}
	mustExec(t, dialWith(t, cfg), "select 1")
}
