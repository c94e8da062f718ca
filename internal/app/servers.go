package app

import (
	"time"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/tlsconf"
)

// serverKey names an open server connection: its pool's key and its PID
// (PIDs repeat across hosts, rarely within one pool's).
type serverKey struct {
	pool poolKey
	pid  uint32
}

// serverInfo is what SHOW SERVERS shows of a server that the client
// holding it does not know.
type serverInfo struct {
	addr    string
	created time.Time
	tls     string // tlsconf.Describe; "" without TLS
}

// serverOpened lists a server e's pool dialled, until serverClosed.
func (a *App) serverOpened(e *entry, c *backend.Conn) {
	info := serverInfo{addr: c.NetConn().RemoteAddr().String(), created: c.Created()}
	if cs, ok := c.TLS(); ok {
		info.tls = tlsconf.Describe(cs)
	}
	a.servers.Store(serverKey{e.key, c.PID()}, info)
}

// server returns what serverOpened listed of a server.
func (a *App) server(db, user string, pid uint32) (serverInfo, bool) {
	v, ok := a.servers.Load(serverKey{poolKey{db, user}, pid})
	if !ok {
		return serverInfo{}, false
	}
	return v.(serverInfo), true
}

// renewForTLS renews every server once server_tls_* or the files it
// names changed, as RECONNECT does: idle ones close now, held ones when
// their clients give them back; new ones log in with the new settings.
func (a *App) renewForTLS() {
	entries := a.entries(func() {})
	for _, e := range entries {
		e.pool.Reconnect()
	}
	a.log.Info("server_tls changed: servers renew as they are given back, new ones use the new settings", "pools", len(entries))
}
