package config

import (
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// MaxPeerID is the largest peer_id, as in PgBouncer: a cancel key names
// its instance in 14 bits (internal/cancel).
const MaxPeerID = 1<<14 - 1

// DefaultPeerPort is a peer's port when its table names none, PgBouncer's.
const DefaultPeerPort = 6432

// Peer is one [peers.ID] entry: a pgvalve of the same fleet, to which a
// cancel request whose key names ID is forwarded. A fleet's instances may
// share one [peers] list: the entry of an instance's own peer_id is
// allowed and never used, as in PgBouncer.
type Peer struct {
	ID   int
	Host string // a name or an address; a path (starting with /) is a unix socket directory
	Port int    // 0 = DefaultPeerPort
	Line int    // line of the [peers.ID] header; 0 if unknown
}

// Addr is where p listens: a TCP host:port, or the unix socket
// .s.PGSQL.<port> in p's directory.
func (p Peer) Addr() (network, address string) {
	port := p.Port
	if port == 0 {
		port = DefaultPeerPort
	}
	if strings.HasPrefix(p.Host, "/") {
		return "unix", filepath.Join(p.Host, fmt.Sprintf(".s.PGSQL.%d", port))
	}
	return "tcp", net.JoinHostPort(p.Host, strconv.Itoa(port))
}

func (p Peer) String() string {
	_, addr := p.Addr()
	return addr
}

func (d *decoder) peers(path toml.Key, val any, into map[int]Peer) {
	d.eachTable(path, val, "[peers.ID] entries", func(name string, line int, key string, kp toml.Key, val any) {
		id, err := strconv.Atoi(name)
		if err != nil {
			if key == "" { // once per table
				d.fail(toml.Key{"peers", name}, "a peer is named by its peer_id, an integer from 1 to %d", MaxPeerID)
			}
			return
		}
		p, seen := into[id]
		if !seen {
			p = Peer{ID: id, Line: line}
		}
		switch key {
		case "":
		case "host":
			d.str(kp, val, &p.Host)
		case "port":
			d.int(kp, val, &p.Port)
		default:
			d.unknown(kp)
		}
		into[id] = p
	})
}

// checkPeers validates peer_id and the [peers.ID] entries.
func (c Config) checkPeers(k *checker, f Config) {
	if c.PeerID < 0 || c.PeerID > MaxPeerID {
		k.add(toml.Key{"peer_id"}, c.PeerID == f.PeerID, nil, "must be from 0 (no fleet) to %d", MaxPeerID)
	}
	// [peers] without peer_id is allowed: a fleet's instances share one
	// file and each is given its peer_id by flag (--peer-id), which is
	// applied after the file is read. It forwards nothing then.
	for _, id := range slices.Sorted(maps.Keys(c.Peers)) {
		p := c.Peers[id]
		fp, inFile := f.Peers[id]
		at := toml.Key{"peers", strconv.Itoa(id)}
		field := func(key string) toml.Key { return append(slices.Clone(at), key) }
		if id < 1 || id > MaxPeerID {
			k.add(at, inFile, nil, "a peer_id is from 1 to %d", MaxPeerID)
		}
		if p.Host == "" {
			k.add(field("host"), inFile && fp.Host == "", at, "host is required")
		}
		if p.Port < 0 || p.Port > 65535 {
			k.add(field("port"), inFile && p.Port == fp.Port, at, "%d is not a port", p.Port)
		}
	}
}

// diffPeers lists what changed in [peers], by id.
func diffPeers(old, new map[int]Peer) []Change {
	ids := slices.Collect(maps.Keys(old))
	for id := range new {
		if _, had := old[id]; !had {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	var out []Change
	for _, id := range ids {
		o, hadOld := old[id]
		n, hasNew := new[id]
		ch := Change{Key: "peers." + strconv.Itoa(id)}
		if hadOld {
			ch.Old = o.String()
		}
		if hasNew {
			ch.New = n.String()
		}
		if ch.Old != ch.New {
			out = append(out, ch)
		}
	}
	return out
}
