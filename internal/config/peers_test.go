package config

import (
	"os"
	"strings"
	"testing"
)

func TestAFleetSharesOnePeersListThatMayNameEachInstanceItself(t *testing.T) {
	const peers = `
[peers.1]
host = "pgvalve-1.fleet"

[peers.2]
host = "10.0.0.2"
port = 7432

[peers.3]
host = "/run/pgvalve-3"
`
	for id := 1; id <= 3; id++ {
		cfg, err := Parse("pgvalve.toml", []byte("peer_id = "+string(rune('0'+id))+"\n"+peers))
		if err != nil {
			t.Fatalf("instance %d: %v", id, err)
		}
		if cfg.PeerID != id || len(cfg.Peers) != 3 {
			t.Fatalf("instance %d: peer_id %d, %d peers; want its id and all three", id, cfg.PeerID, len(cfg.Peers))
		}
	}
	cfg, _ := Parse("pgvalve.toml", []byte("peer_id = 1\n"+peers))
	for id, want := range map[int][2]string{
		1: {"tcp", "pgvalve-1.fleet:6432"},
		2: {"tcp", "10.0.0.2:7432"},
		3: {"unix", "/run/pgvalve-3/.s.PGSQL.6432"},
	} {
		if network, addr := cfg.Peers[id].Addr(); network != want[0] || addr != want[1] {
			t.Errorf("peer %d dials %s %s; want %s %s", id, network, addr, want[0], want[1])
		}
	}
}

func TestBadPeersAreNamedByTheirLine(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"peer_id too large", "peer_id = 16384\n", "pgvalve.toml:1: peer_id: must be from 0 (no fleet) to 16383"},
		{"negative peer_id", "\npeer_id = -1\n", "pgvalve.toml:2: peer_id: must be from 0 (no fleet) to 16383"},
		{"peer not named by a number", "peer_id = 1\n[peers.two]\nhost = \"h\"\n",
			"pgvalve.toml:2: peers.two: a peer is named by its peer_id, an integer from 1 to 16383"},
		{"peer id out of range", "peer_id = 1\n\n[peers.0]\nhost = \"h\"\n", "pgvalve.toml:3: peers.0: a peer_id is from 1 to 16383"},
		{"peer without host", "peer_id = 1\n[peers.2]\nport = 6432\n", "pgvalve.toml:2: peers.2.host: host is required"},
		{"peer with a bad port", "peer_id = 1\n[peers.2]\nhost = \"h\"\nport = 70000\n", "pgvalve.toml:4: peers.2.port: 70000 is not a port"},
		{"peer with an unknown key", "peer_id = 1\n[peers.2]\nhost = \"h\"\npool_size = 3\n", `pgvalve.toml:4: unknown key "peers.2.pool_size"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("pgvalve.toml", []byte(tc.doc))
			if got := strings.Join(errLines(err), "\n"); got != tc.want {
				t.Fatalf("errors:\n got  %q\n want %q", got, tc.want)
			}
		})
	}
}

func TestAReloadChangesPeersLiveButPeerIDOnlyAtRestart(t *testing.T) {
	running, next := Default(), Default()
	running.PeerID, next.PeerID = 1, 2
	running.Peers = map[int]Peer{2: {ID: 2, Host: "a"}, 3: {ID: 3, Host: "gone"}}
	next.Peers = map[int]Peer{2: {ID: 2, Host: "b", Port: 7000}, 4: {ID: 4, Host: "new"}}
	applied, changes := Reloaded(running, next)
	var got []string
	for _, c := range changes {
		got = append(got, c.String())
	}
	want := []string{
		"peer_id: 1 → 2 (needs a restart)",
		"peers.2: a:6432 → b:7000",
		"peers.3: gone:6432 → (none)",
		"peers.4: (none) → new:6432",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("changes:\n got  %q\n want %q", got, want)
	}
	if applied.PeerID != 1 || applied.Peers[4].Host != "new" {
		t.Fatalf("applied peer_id %d, peers %v; want the running id and the new peers", applied.PeerID, applied.Peers)
	}
}

func TestAPgBouncerFilesPeersCarryOver(t *testing.T) {
	main := "[pgbouncer]\nlisten_port = 6432\npeer_id = 2\n" +
		"[peers]\n" +
		"1 = host=10.0.0.1\n" + // 5
		"2 = host=10.0.0.2 port=7432\n" + // 6
		"3 = host=/tmp/pgbouncer-3 port=5555 pool_size=4\n" // 7
	path := writeINI(t, main, "")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PeerID != 2 || len(cfg.Peers) != 3 || cfg.Peers[1].String() != "10.0.0.1:6432" ||
		cfg.Peers[2].String() != "10.0.0.2:7432" || cfg.Peers[3].String() != "/tmp/pgbouncer-3/.s.PGSQL.5555" {
		t.Fatalf("peer_id %d, peers %v", cfg.PeerID, cfg.Peers)
	}
	if notices := strings.Join(cfg.Notices(), "\n"); !strings.Contains(notices, path+":7: 3: pool_size ignored") {
		t.Errorf("notices %q do not say pool_size was ignored", notices)
	}

	data, _ := os.ReadFile(path)
	out, err := ConvertINI(path, data)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse("converted.toml", []byte(out))
	if err != nil || len(Diff(cfg, back)) != 0 {
		t.Fatalf("convert's TOML reads back as %v, %v:\n%s", Diff(cfg, back), err, out)
	}

	// What the conversion refuses, and then what validation refuses,
	// each at its own line.
	_, err = Load(writeINI(t, "[pgbouncer]\nlisten_port = 6432\npeer_id = 1\n[peers]\n4 = host=b sslmode=require\n", ""))
	if err == nil || !strings.Contains(err.Error(), ":5: 4: sslmode per peer is not supported") {
		t.Errorf("a peer with sslmode: %v; want an error at line 5", err)
	}
	_, err = Load(writeINI(t, "[pgbouncer]\nlisten_port = 6432\npeer_id = 20000\n[peers]\nx = host=a\n", ""))
	for _, want := range []string{":3: peer_id: must be from 0 (no fleet) to 16383", ":5: peers.x: a peer is named by its peer_id"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the error lacks %q:\n%v", want, err)
		}
	}
}
