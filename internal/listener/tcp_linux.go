package listener

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenConfig sets the options accepted connections inherit on the
// listening socket, and has Go set no keepalive of its own on them (it
// still sets TCP_NODELAY on each).
func listenConfig() *net.ListenConfig {
	return &net.ListenConfig{KeepAlive: -1, Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			for _, o := range []struct{ level, opt, v int }{
				{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
				{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(KeepAlive.Idle.Seconds())},
				{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(KeepAlive.Interval.Seconds())},
				{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, KeepAlive.Count},
				{unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
			} {
				if err == nil {
					err = unix.SetsockoptInt(int(fd), o.level, o.opt, o.v)
				}
			}
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
}
