package listener

import (
	"context"
	"net"
	"time"
)

// KeepAlive is how the TCP keepalive of every client connection is set:
// Go's defaults for an accepted connection (net.ListenConfig), kept since
// pgvalve has no keepalive settings of its own.
var KeepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: 9}

// TCP listens on addr for clients. Where the system lets accepted
// connections inherit the listening socket's options (Linux), keepalive
// and TCP_NODELAY are set once on the listening socket instead of on each
// connection: that is four system calls fewer per connection, which counts
// when every transaction opens one (pgbench -C).
func TCP(addr string) (net.Listener, error) {
	return listenConfig().Listen(context.Background(), "tcp", addr)
}
