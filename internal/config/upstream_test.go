package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseUpstreamAcceptsPostgresURLs(t *testing.T) {
	tests := []struct {
		in   string
		want Upstream
	}{
		{"postgres://db.internal/app",
			Upstream{Hosts: []Address{{Host: "db.internal", Port: 5432}}, Database: "app"}},
		{"postgresql://alice:secret@10.0.0.5:6543/sales",
			Upstream{Hosts: []Address{{Host: "10.0.0.5", Port: 6543}}, User: "alice", Password: "secret", Database: "sales"}},
		{"postgres://[::1]:5433/app",
			Upstream{Hosts: []Address{{Host: "::1", Port: 5433}}, Database: "app"}},
		{"postgres://[2001:db8::7]/app",
			Upstream{Hosts: []Address{{Host: "2001:db8::7", Port: 5432}}, Database: "app"}},
		{"postgres://bob:p%40ss%3Aw%2Frd@h/my%20db",
			Upstream{Hosts: []Address{{Host: "h", Port: 5432}}, User: "bob", Password: "p@ss:w/rd", Database: "my db"}},
		{"postgres://h",
			Upstream{Hosts: []Address{{Host: "h", Port: 5432}}}},
		{"postgres://u@h/",
			Upstream{Hosts: []Address{{Host: "h", Port: 5432}}, User: "u"}},
		{"POSTGRES://h/x",
			Upstream{Hosts: []Address{{Host: "h", Port: 5432}}, Database: "x"}},
		{"postgres://u@h1:5433,h2,[::1]:5434/app?target_session_attrs=read-write&load_balance_hosts=disable",
			Upstream{Hosts: []Address{{Host: "h1", Port: 5433}, {Host: "h2", Port: 5432}, {Host: "::1", Port: 5434}},
				User: "u", Database: "app", TargetSessionAttrs: "read-write", LoadBalanceHosts: "disable"}},
		{"postgres://a:p%2C%40w@h1,h2?sslmode=disable",
			Upstream{Hosts: []Address{{Host: "h1", Port: 5432}, {Host: "h2", Port: 5432}},
				User: "a", Password: "p,@w", Params: map[string]string{"sslmode": "disable"}}},
		{"postgres://h/app?sslmode=require&connect_timeout=10&application_name=a%20b",
			Upstream{Hosts: []Address{{Host: "h", Port: 5432}}, Database: "app",
				Params: map[string]string{"sslmode": "require", "connect_timeout": "10", "application_name": "a b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseUpstream(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseUpstreamRejectsBadURLsClearly(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "upstream: empty URL"},
		{"postgres:///app", "upstream: missing host"},
		{"postgres://user:pw@:5432/app", "upstream: missing host"},
		{"postgres://h:99999/app", `upstream: invalid port "99999"`},
		{"postgres://h:0/app", `upstream: invalid port "0"`},
		{"postgres://u:hunter2@h:abc/app", `upstream: invalid URL: invalid port ":abc" after host`},
		{"mysql://h/app", `upstream: unsupported scheme "mysql" (want postgres or postgresql)`},
		{"db.internal/app", "upstream: URL must start with postgres:// or postgresql://"},
		{"postgres:h/app", "upstream: URL must start with postgres://"},
		{"postgres://h1,/app", "upstream: missing host"},
		{"postgres://h1,h2:0/app", `upstream: invalid port "0"`},
		{"postgres://h1,h2/app?target_session_attrs=master", `upstream: target_session_attrs "master": want one of any, read-write, read-only, primary, standby, prefer-standby`},
		{"postgres://h1,h2/app?load_balance_hosts=sometimes", `upstream: load_balance_hosts "sometimes": want one of least-busy, round-robin, random, disable`},
		{"postgres://h" + strings.Repeat(",h", MaxHosts) + "/app", "upstream: 65 hosts; at most 64"},
		{"postgres://h/app#frag", "upstream: unexpected #fragment"},
		{"postgres://h/app?sslmode=a&sslmode=b", `upstream: parameter "sslmode" given more than once`},
		{"postgres://h/app?x=%zz", `upstream: invalid query: invalid URL escape "%zz"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseUpstream(tt.in)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("ParseUpstream(%q) error = %v, want %q", tt.in, err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}
