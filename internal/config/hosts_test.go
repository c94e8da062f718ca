package config

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestARouteListsItsHostsAsPgBouncerOrAsATomlList(t *testing.T) {
	const doc = `[databases.a]
upstream = "postgres://u@ignored/app"
host = "10.0.0.1:5432, 10.0.0.2"

[databases.b]
upstream = "postgres://u@ignored/app"
host = ["h1:6000", { host = "[fd00::2]:6001", weight = 2 }]
`
	cfg, err := Parse("r.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.Databases["a"].Hosts, []Address{{Host: "10.0.0.1", Port: 5432}, {Host: "10.0.0.2", Port: 5432}}; !slices.Equal(got, want) {
		t.Fatalf("a's hosts %v; want %v", got, want)
	}
	if got, want := cfg.Databases["b"].Hosts, []Address{{Host: "h1", Port: 6000}, {Host: "fd00::2", Port: 6001, Weight: 2}}; !slices.Equal(got, want) {
		t.Fatalf("b's hosts %v; want %v", got, want)
	}
}

func TestBadHostSettingsAreNamedByLine(t *testing.T) {
	route := "[databases.a]\nupstream = \"postgres://h/app\"\n"
	tests := []struct{ name, doc, want string }{
		{"a bad port", route + "host = \"h1:99999\"\n", `r.toml:3: databases.a.host: invalid port "99999"`},
		{"an empty host", route + "host = \"h1,,h2\"\n", `r.toml:3: databases.a.host: missing host`},
		{"a weight out of range", route + "host = [{ host = \"h1\", weight = 0 }]\n", `r.toml:3: databases.a.host: weight of h1: want an integer from 1 to 1000`},
		{"a table without host", route + "host = [{ weight = 2 }]\n", `r.toml:3: databases.a.host: a host table needs host = "name:port"`},
		{"a table with a stray key", route + "host = [{ host = \"h1\", role = \"primary\" }]\n", `r.toml:3: databases.a.host: unknown key "role" in a host table`},
		{"a number", route + "host = 5\n", `r.toml:3: databases.a.host: expected a string of hosts or a list, got integer`},
		{"a bad target_session_attrs", route + "target_session_attrs = \"master\"\n",
			`r.toml:3: databases.a.target_session_attrs: target_session_attrs "master": want one of any, read-write, read-only, primary, standby, prefer-standby`},
		{"a bad route load_balance_hosts", route + "load_balance_hosts = \"yes\"\n",
			`r.toml:3: databases.a.load_balance_hosts: load_balance_hosts "yes": want one of least-busy, round-robin, random, disable`},
		{"a bad global load_balance_hosts", "\nload_balance_hosts = \"on\"\n",
			`r.toml:2: load_balance_hosts: load_balance_hosts "on": want one of least-busy, round-robin, random, disable`},
		{"too many hosts", route + "host = \"h" + strings.Repeat(",h", MaxHosts) + "\"\n", `r.toml:3: databases.a.host: 65 hosts; at most 64`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("r.toml", []byte(tt.doc))
			if got := errLines(err); !slices.Contains(got, tt.want) {
				t.Fatalf("errors %q; want %q among them", got, tt.want)
			}
		})
	}
}

func TestATargetTakesTheRouteOverTheURLOverTheGlobal(t *testing.T) {
	cfg := Default()
	cfg.LoadBalanceHosts = "round-robin"
	url := "postgres://u:pw@h1:5433,h2/app?target_session_attrs=read-write&load_balance_hosts=random&sslmode=disable"
	tests := []struct {
		name  string
		route Database
		want  Upstream
	}{
		{"the URL's own", Database{Upstream: url}, Upstream{
			Hosts: []Address{{Host: "h1", Port: 5433}, {Host: "h2", Port: 5432}}, User: "u", Password: "pw", Database: "app",
			TargetSessionAttrs: "read-write", LoadBalanceHosts: "random", Params: map[string]string{"sslmode": "disable"}}},
		{"the route's over the URL's", Database{Upstream: url, Hosts: []Address{{Host: "r", Port: 1, Weight: 2}},
			TargetSessionAttrs: "standby", LoadBalanceHosts: "disable"}, Upstream{
			Hosts: []Address{{Host: "r", Port: 1, Weight: 2}}, User: "u", Password: "pw", Database: "app",
			TargetSessionAttrs: "standby", LoadBalanceHosts: "disable", Params: map[string]string{"sslmode": "disable"}}},
		{"the global and any where neither says", Database{Upstream: "postgres://h/app"}, Upstream{
			Hosts: []Address{{Host: "h", Port: 5432}}, Database: "app", TargetSessionAttrs: "any", LoadBalanceHosts: "round-robin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cfg.Target(tt.route)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestUpstreamsGivenTogetherBecomeOneURLOfTheirHosts(t *testing.T) {
	got, err := JoinUpstreams([]string{"postgres://u:p@h1:5433/app?sslmode=disable", "postgres://u:p@[::1]/app?sslmode=disable"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "postgres://u:p@h1:5433,[::1]:5432/app?sslmode=disable"; got != want {
		t.Fatalf("joined %q; want %q", got, want)
	}
	up, err := ParseUpstream(got)
	if err != nil || len(up.Hosts) != 2 {
		t.Fatalf("the joined URL parses to %+v, %v; want two hosts", up, err)
	}
	if _, err := JoinUpstreams([]string{"postgres://u@h1/app", "postgres://u@h2/other"}); err == nil ||
		err.Error() != "upstream: URLs given together may differ only in their hosts" {
		t.Fatalf("URLs for two databases joined with error %v; want them refused", err)
	}
}
