package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		"pool_size = 3\n",
		"listen = \"[::1]:6432\"\nupstream = \"postgres://u:p@h:5433/db?sslmode=disable\"\n",
		"query_wait_timeout = 1.5\nshutdown_timeout = \"2s\"\n",
		"[databases.app]\nupstream = \"postgresql://h/app\"\npool_mode = \"transaction\"\npool_size = 2\n",
		"databases = { a = { upstream = \"postgres://a\" } }\n",
		"a = \"\"\"\n[b]\n\"\"\"\n[[c]]\nd = [1,\n2]\n",
		"pool_szie = 5\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.toml", data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Parse succeeded but Validate failed: %v", err)
		}
		if _, ok := cfg.PoolFor("x"); ok && cfg.Upstream == "" && len(cfg.Databases) == 0 {
			t.Fatal("PoolFor found a route in a config without any")
		}
	})
}

// FuzzKeyLines checks the statement splitter against the parser: every key
// of a document that parses must get a line within the document.
func FuzzKeyLines(f *testing.F) {
	f.Add("a = 1\n[t]\nb = \"\"\"\nx\n\"\"\"\n[[u]]\nc = [1,\n2]\n")
	f.Add("[\"q k\".'l']\nd.e = { f = 1 }\r\n")
	f.Fuzz(func(t *testing.T, doc string) {
		md, err := toml.Decode(doc, new(map[string]any))
		if err != nil {
			return
		}
		lines := keyLines(doc)
		n := strings.Count(doc, "\n") + 1
		for _, k := range md.Keys() {
			if l := lines[k.String()]; l < 1 || l > n {
				t.Fatalf("key %s got line %d of %d in %q", k, l, n, doc)
			}
		}
	})
}

// FuzzParseINI reads PgBouncer files: no input may panic, one that loads
// must validate, and its converted TOML must load as well.
func FuzzParseINI(f *testing.F) {
	for _, seed := range []string{
		bouncerINI,
		"[pgbouncer]\nlisten_port=6432\n[databases]\na = host=h port=1 dbname='x y' password='a\\'b'\n",
		"[databases]\n\"q\"\"x\" = host=::1,h2 client_encoding=UTF8\n* = host=/tmp\n[pgbouncer]\npool_mode=statement\n",
		"[pgbouncer]\nx\n[\n=\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Contains(string(data), "%include") {
			return // it reads files: not this test's business
		}
		cfg, err := ParseINI("fuzz.ini", data)
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("ParseINI succeeded but Validate failed: %v", err)
		}
		out, err := ConvertINI("fuzz.ini", data)
		if err != nil {
			t.Fatalf("ParseINI succeeded but ConvertINI failed: %v", err)
		}
		if _, err := Parse("converted.toml", []byte(out)); err != nil {
			t.Fatalf("the converted TOML does not load: %v\n%s", err, out)
		}
	})
}
