package hba

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary files to the parser: it never panics, an
// error always names a line, and what parses can be matched.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		sample,
		"local all all trust\n",
		"hostssl \"a,b\",c all ::/0 scram-sha-256 clientcert=verify-full\n",
		"host all all 10.0.0.0 255.0.0.0 md5 \\\n",
		"host all all 1.2.3.4/33 md5\n\"",
		"local all all peer # x\\\nhost all all all reject\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rs, err := Parse("f", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f:") {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		lines := strings.Count(string(data), "\n") + 1
		for _, r := range rs.Rules() {
			if r.Line < 1 || r.Line > lines {
				t.Fatalf("rule on line %d of %d", r.Line, lines)
			}
		}
		for _, c := range []Client{
			{Local: true, Database: "all", User: "all"},
			{TLS: true, Database: "a", User: "a", Addr: netip.MustParseAddr("10.0.0.1")},
			{Database: "c", User: "b", Addr: netip.MustParseAddr("::1")},
		} {
			if r, ok := rs.Match(c); ok && r.Method == "" {
				t.Fatalf("rule on line %d has no method", r.Line)
			}
		}
	})
}
