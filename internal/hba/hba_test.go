package hba

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const sample = `# TYPE  DATABASE        USER            ADDRESS                 METHOD
local   all             postgres                                peer
local   "all"           all                                     md5
hostssl app,reports     alice,"Bob"     10.0.0.0/8              scram-sha-256 clientcert=verify-full
hostnossl app           alice           10.0.0.0/8              reject
host    sameuser        all             192.168.1.0 255.255.255.0 md5
host    shop            carol           ::1/128                 trust
host    replication     all             all                     trust
hostgssenc all          all             all                     trust
host    all             dave            127.0.0.1/32 \
                                                                trust # continued
`

func TestParseReportsEveryBadLineWithItsNumber(t *testing.T) {
	bad := sample + "host all all all \\\n  magic\nlocal all +g trust\n"
	_, err := Parse("hba.conf", []byte(bad))
	if err == nil || !strings.Contains(err.Error(), "hba.conf:12: invalid authentication method") ||
		!strings.Contains(err.Error(), "hba.conf:14: user \"+g\"") {
		t.Fatalf("want lines 12 (continued) and 14 refused, got %v", err)
	}
}

func load(t *testing.T, text string) *Rules {
	t.Helper()
	rs, err := Parse("hba.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestMatchPicksTheFirstMatchingLine(t *testing.T) {
	rs := load(t, sample)
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		c    Client
		line int
		m    Method
	}{
		{"local postgres gets peer", Client{Local: true, Database: "x", User: "postgres"}, 2, Peer},
		{"local anyone else: quoted all is a database named all", Client{Local: true, Database: "all", User: "u"}, 3, MD5},
		{"local, another database: no line", Client{Local: true, Database: "x", User: "u"}, 0, ""},
		{"hostssl alice in 10/8", Client{TLS: true, Database: "reports", User: "alice", Addr: ip("10.1.2.3")}, 4, SCRAM},
		{"quoted user keeps its case", Client{TLS: true, Database: "app", User: "Bob", Addr: ip("10.1.2.3")}, 4, SCRAM},
		{"bob is not Bob", Client{TLS: true, Database: "app", User: "bob", Addr: ip("10.1.2.3")}, 0, ""},
		{"alice without TLS hits reject", Client{Database: "app", User: "alice", Addr: ip("10.9.9.9")}, 5, Reject},
		{"alice out of 10/8: no line", Client{TLS: true, Database: "app", User: "alice", Addr: ip("11.0.0.1")}, 0, ""},
		{"sameuser with a netmask", Client{Database: "erin", User: "erin", Addr: ip("192.168.1.77")}, 6, MD5},
		{"sameuser but another database", Client{Database: "x", User: "erin", Addr: ip("192.168.1.77")}, 0, ""},
		{"v4-mapped client is IPv4", Client{Database: "erin", User: "erin", Addr: ip("::ffff:192.168.1.5")}, 6, MD5},
		{"IPv6 loopback", Client{Database: "shop", User: "carol", Addr: ip("::1")}, 7, Trust},
		{"IPv4 loopback is not ::1", Client{Database: "shop", User: "carol", Addr: ip("127.0.0.2")}, 0, ""},
		{"replication never matches, hostgssenc never matches; continued line", Client{Database: "z", User: "dave", Addr: ip("127.0.0.1")}, 10, Trust},
		{"a unix client does not match host lines", Client{Local: true, Database: "shop", User: "carol"}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, ok := rs.Match(tc.c)
			if !ok {
				if tc.line != 0 {
					t.Fatalf("no match, want line %d", tc.line)
				}
				return
			}
			if r.Line != tc.line || r.Method != tc.m {
				t.Fatalf("matched line %d (%s), want line %d (%s)", r.Line, r.Method, tc.line, tc.m)
			}
		})
	}
	if r, _ := rs.Match(Client{TLS: true, Database: "app", User: "alice", Addr: ip("10.1.2.3")}); r.ClientCert != CertVerifyFull {
		t.Fatalf("clientcert = %v", r.ClientCert)
	}
}

func TestParseRefusesWhatPgvalveCannotHonour(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"host all +admins all reject", "+group membership is not supported"},
		{"host samerole all all md5", "not supported (pgvalve cannot look up roles)"},
		{"host @dbs all all md5", "@file inclusion is not supported"},
		{"host all /^a all md5", "regular expressions are not supported"},
		{"host all all samenet md5", `address "samenet" is not supported`},
		{"host all all db.example.com md5", "host names are not supported"},
		{"host all all 10.0.0.1 md5", `invalid netmask "md5"`},
		{"host all all 10.0.0.1 255.0.255.0 md5", "not a contiguous mask"},
		{"host all all 10.0.0.1 ffff:: md5", "invalid netmask"},
		{"host all all 10.0.0.1", "needs a /prefix or a netmask"},
		{"host all all all ldap", `authentication method "ldap" is not supported`},
		{"host all all all magic", `invalid authentication method "magic"`},
		{"host all all all peer", "peer authentication is only supported on local sockets"},
		{"host all all all cert", "cert authentication is only supported on hostssl"},
		{"host all all all md5 clientcert=verify-full", `clientcert can only be configured for "hostssl" rows`},
		{"hostssl all all all cert clientcert=verify-ca", `only accepts "verify-full"`},
		{"hostssl all all all md5 clientcert=1", "invalid value for clientcert"},
		{"local all all peer map=omicron", "map=) are not supported"},
		{"hostssl all all all md5 radiusserver=x", `option "radiusserver" is not supported`},
		{"hostssl all all all md5 oops", "not in name=value form"},
		{"host all all all password", "cleartext"},
		{"hostnossl all all all password", "cleartext"},
		{"include other.conf", "directives are not supported"},
		{"hots all all all md5", "invalid connection type"},
		{"local all", "end of line before the user field"},
		{"local all all", "end of line before the authentication method"},
		{"host all all", "end of line before the address"},
		{`local "all all md5`, "unterminated quoted string"},
		{"local a,,b all md5", "empty item"},
		{`local "" all md5`, "empty database name"},
		{"local all all md5,trust", "must be a single word"},
	} {
		_, err := Parse("f", []byte("\n"+tc.line+"\n"))
		if err == nil || !strings.Contains(err.Error(), "f:2: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want line 2 and %q", tc.line, err, tc.want)
		}
	}
}

func TestParseAcceptsListsWithSpacesCommentsAndCRLF(t *testing.T) {
	rs := load(t, "# only comments\r\n\r\nlocal  db1, db2,\"db 3\"  all  trust  # tail\r\nhostssl all all all password\n")
	if len(rs.Rules()) != 2 {
		t.Fatalf("rules: %+v", rs.Rules())
	}
	for _, db := range []string{"db1", "db2", "db 3"} {
		if _, ok := rs.Match(Client{Local: true, Database: db, User: "u"}); !ok {
			t.Errorf("database %q did not match", db)
		}
	}
}

func TestLoadReadsAFileAndNoRulesRefuseEveryone(t *testing.T) {
	p := filepath.Join(t.TempDir(), "hba.conf")
	if err := os.WriteFile(p, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := rs.Match(Client{Local: true, Database: "a", User: "b"}); ok {
		t.Fatal("an empty file matched")
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing file loaded")
	}
}
