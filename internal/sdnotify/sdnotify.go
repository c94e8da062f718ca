// Package sdnotify tells systemd how a Type=notify service is doing
// (sd_notify(3)): READY=1 once it serves, RELOADING=1 while it reloads,
// STOPPING=1 as it stops. It writes one datagram to $NOTIFY_SOCKET, which
// systemd sets; without it, it does nothing. No cgo: the protocol is a
// unix datagram of newline-separated assignments.
package sdnotify

import (
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Socket is the environment variable systemd names its socket in.
const Socket = "NOTIFY_SOCKET"

// Notify sends the state lines to systemd; it reports whether a socket
// was named (false: not run by systemd, nothing sent).
func Notify(lines ...string) (bool, error) {
	path := os.Getenv(Socket)
	if path == "" {
		return false, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return true, fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(strings.Join(lines, "\n"))); err != nil {
		return true, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}

// Ready says the service serves; status is shown by systemctl status.
func Ready(status string) (bool, error) { return Notify("READY=1", "STATUS="+status) }

// Reloading says a reload began; Ready ends it. MONOTONIC_USEC lets
// Type=notify-reload services match it to the reload they asked for.
func Reloading() (bool, error) {
	return Notify("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicUsec()))
}

// Stopping says the service is shutting down.
func Stopping() (bool, error) { return Notify("STOPPING=1") }
