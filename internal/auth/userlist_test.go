package auth

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// The verifier PostgreSQL 15 wrote to pg_authid for CREATE ROLE carol
// PASSWORD 'pencil'.
const pencil = "SCRAM-SHA-256$4096:WQl0jikhEWbOg6Klw5ghIA==$ydxPY+eKZDPmSb+dKut1hGEMAIOxbzVpuO+ePp25ndg=:Wu6VClFcGqZiHexRBUE4Vk1cvrZ/7iF2ZRdcFscAj+g="

func TestUserlistReadsPgBouncersFormat(t *testing.T) {
	text := `; a comment
# another
"alice" "secret"
"bob"   "md5` + strings.Repeat("0a", 16) + `"
"say ""hi""" "pw with ""quotes"""   trailing text is ignored
"carol" "` + pencil + `"
`
	u, err := ParseUserlist(strings.NewReader(text), "userlist.txt")
	if err != nil {
		t.Fatal(err)
	}
	if s, ok := u.Lookup("alice"); !ok || s.Kind != KindPlain || s.Plain != "secret" {
		t.Errorf("alice: %+v", s)
	}
	if s, ok := u.Lookup("bob"); !ok || s.Kind != KindMD5 || s.MD5 != strings.Repeat("0a", 16) {
		t.Errorf("bob: %+v", s)
	}
	if s, ok := u.Lookup(`say "hi"`); !ok || s.Plain != `pw with "quotes"` {
		t.Errorf("quoted name: %+v, %v", s, ok)
	}
	if s, ok := u.Lookup("carol"); !ok || s.Kind != KindSCRAM || s.SCRAM.Iterations != 4096 {
		t.Errorf("carol: %+v", s)
	}
	if u.Len() != 4 {
		t.Errorf("%d users, want 4", u.Len())
	}
}

func TestUserlistErrorsNameTheLineAndNeverTheSecret(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"\"alice\" \"a\"\nalice secret\n", "userlist.txt:2: want two double-quoted fields"},
		{"\"alice\" \"unterminated\n", "userlist.txt:1: unterminated double quote"},
		{"\"alice\" \"a\"\n\"alice\" \"b\"\n", `userlist.txt:2: user "alice" is listed twice`},
		{"\"bad\" \"SCRAM-SHA-256$x:c2FsdA==$a:b\"\n", `userlist.txt:1: user "bad": malformed SCRAM-SHA-256 secret: iterations`},
		{"\"empty\" \"\"\n", `userlist.txt:1: user "empty": empty secret`},
		{"\"\" \"x\"\n", "userlist.txt:1: empty user name"},
	} {
		_, err := ParseUserlist(strings.NewReader(tc.text), "userlist.txt")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %s…", tc.text, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "SCRAM-SHA-256$x") {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

// The verifier pgvalve derives from a password is PostgreSQL's, byte for
// byte, and a secret of each kind matches its password and no other.
func TestVerifiersAndSecretsMatchPostgreSQLs(t *testing.T) {
	s, err := ParseSecret(pencil)
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier("pencil", s.SCRAM.Salt, 4096)
	if v.String() != pencil {
		t.Errorf("written as %s, PostgreSQL wrote %s", v, pencil)
	}
	if !bytes.Equal(v.StoredKey, s.SCRAM.StoredKey) || !bytes.Equal(v.ServerKey, s.SCRAM.ServerKey) {
		t.Errorf("derived keys %s:%s, PostgreSQL's %s:%s", b64(v.StoredKey), b64(v.ServerKey), b64(s.SCRAM.StoredKey), b64(s.SCRAM.ServerKey))
	}
	md5s, _ := ParseSecret("md5" + md5Hex("pencil"+"carol"))
	plain, _ := ParseSecret("pencil")
	for name, sec := range map[string]Secret{"scram": s, "md5": md5s, "plain": plain} {
		if !sec.Matches("carol", "pencil") || sec.Matches("carol", "pen") {
			t.Errorf("%s secret: right password %v, wrong one %v", name, sec.Matches("carol", "pencil"), sec.Matches("carol", "pen"))
		}
	}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// FuzzUserlist: any bytes either parse or give a line-numbered error,
// never a panic, and never echo a secret back.
func FuzzUserlist(f *testing.F) {
	f.Add([]byte("\"alice\" \"secret\"\n"))
	f.Add([]byte("\"a\"\"b\" \"" + pencil + "\" ; c\n"))
	f.Add([]byte("\"x\" \"SCRAM-SHA-256$99999999:AA==$AA==:AA==\"\n"))
	f.Add([]byte("\"x\" \"md5zz\"\n\"y"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUserlist(bytes.NewReader(b), "f")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		if u.Len() > bytes.Count(b, []byte("\n"))+1 {
			t.Fatalf("%d users from %d lines", u.Len(), bytes.Count(b, []byte("\n"))+1)
		}
	})
}
