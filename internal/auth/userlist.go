package auth

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Kind is what a stored secret is.
type Kind uint8

const (
	KindPlain Kind = iota + 1 // the password itself
	KindMD5                   // "md5" + hex(md5(password + user)), PostgreSQL's md5 format
	KindSCRAM                 // a SCRAM-SHA-256 verifier, PostgreSQL's format
)

// Secret is one user's stored secret, as auth_file holds it.
type Secret struct {
	Kind  Kind
	Plain string // KindPlain
	MD5   string // KindMD5: the 32 hex digits after "md5"
	SCRAM Verifier
}

// Verifier is a SCRAM-SHA-256 verifier: what PostgreSQL keeps in
// pg_authid.rolpassword as SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey.
type Verifier struct {
	Iterations           int
	Salt                 []byte
	StoredKey, ServerKey []byte
}

// String is the verifier in PostgreSQL's format, what auth_file takes.
func (v Verifier) String() string {
	b := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", v.Iterations, b(v.Salt), b(v.StoredKey), b(v.ServerKey))
}

// maxIterations bounds a stored verifier's iteration count, so a bad
// auth_file cannot make every login burn CPU (PostgreSQL's default is 4096).
const maxIterations = 1 << 20

// ParseSecret reads a secret in PostgreSQL's formats: a SCRAM-SHA-256
// verifier, an md5 hash, or else a plain password.
func ParseSecret(s string) (Secret, error) {
	switch {
	case strings.HasPrefix(s, "SCRAM-SHA-256$"):
		v, err := parseVerifier(s)
		return Secret{Kind: KindSCRAM, SCRAM: v}, err
	case len(s) == 35 && strings.HasPrefix(s, "md5") && isHex(s[3:]):
		return Secret{Kind: KindMD5, MD5: strings.ToLower(s[3:])}, nil
	case s == "":
		return Secret{}, errors.New("empty secret")
	}
	return Secret{Kind: KindPlain, Plain: s}, nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

func parseVerifier(s string) (Verifier, error) {
	bad := func(what string) (Verifier, error) {
		return Verifier{}, fmt.Errorf("malformed SCRAM-SHA-256 secret: %s", what)
	}
	parts := strings.Split(strings.TrimPrefix(s, "SCRAM-SHA-256$"), "$")
	if len(parts) != 2 {
		return bad("want SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey")
	}
	iterSalt, keys := strings.Split(parts[0], ":"), strings.Split(parts[1], ":")
	if len(iterSalt) != 2 || len(keys) != 2 {
		return bad("want SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey")
	}
	n, err := strconv.Atoi(iterSalt[0])
	if err != nil || n < 1 || n > maxIterations {
		return bad(fmt.Sprintf("iterations must be a number from 1 to %d", maxIterations))
	}
	v := Verifier{Iterations: n}
	for _, f := range []struct {
		name string
		in   string
		out  *[]byte
		size int
	}{{"salt", iterSalt[1], &v.Salt, 0}, {"StoredKey", keys[0], &v.StoredKey, 32}, {"ServerKey", keys[1], &v.ServerKey, 32}} {
		b, err := base64.StdEncoding.DecodeString(f.in)
		if err != nil || len(b) == 0 || (f.size > 0 && len(b) != f.size) {
			return bad(f.name + " is not valid base64 of the right length")
		}
		*f.out = b
	}
	return v, nil
}

// Userlist is auth_file: each user's secret.
type Userlist struct {
	m map[string]Secret
}

// Lookup returns user's secret.
func (u *Userlist) Lookup(user string) (Secret, bool) {
	if u == nil {
		return Secret{}, false
	}
	s, ok := u.m[user]
	return s, ok
}

// Len is how many users it has.
func (u *Userlist) Len() int { return len(u.m) }

// maxUserlist bounds auth_file's size: it is read whole, at start and on
// reload.
const maxUserlist = 64 << 20

// LoadUserlist reads auth_file.
func LoadUserlist(path string) (*Userlist, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseUserlist(io.LimitReader(f, maxUserlist+1), path)
}

// ParseUserlist reads PgBouncer's userlist.txt format: one user a line,
// "name" "secret", each in double quotes with a quote inside doubled;
// empty lines and lines starting with ';' or '#' are comments. Errors
// name the file (name) and line.
func ParseUserlist(r io.Reader, name string) (*Userlist, error) {
	u := &Userlist{m: make(map[string]Secret)}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxUserlist)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] == ';' || line[0] == '#' {
			continue
		}
		user, rest, err := quoted(line)
		if err == nil {
			var secret string
			// What follows the secret is ignored, as PgBouncer does.
			secret, _, err = quoted(bytes.TrimLeft(rest, " \t"))
			if err == nil {
				err = u.add(user, secret)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return u, nil
}

func (u *Userlist) add(user, secret string) error {
	if user == "" {
		return errors.New("empty user name")
	}
	if _, dup := u.m[user]; dup {
		return fmt.Errorf("user %q is listed twice", user)
	}
	s, err := ParseSecret(secret)
	if err != nil {
		return fmt.Errorf("user %q: %w", user, err) // never the secret itself
	}
	u.m[user] = s
	return nil
}

// quoted reads one "..." field (a doubled quote inside is one quote) at
// the start of b and returns it and what follows.
func quoted(b []byte) (string, []byte, error) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, errors.New(`want two double-quoted fields: "user" "secret"`)
	}
	var out []byte
	for i := 1; i < len(b); i++ {
		if b[i] != '"' {
			out = append(out, b[i])
			continue
		}
		if i+1 < len(b) && b[i+1] == '"' {
			out = append(out, '"')
			i++
			continue
		}
		return string(out), b[i+1:], nil
	}
	return "", nil, errors.New("unterminated double quote")
}
