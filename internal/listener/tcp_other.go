//go:build !linux

package listener

import "net"

// listenConfig has Go set keepalive on each accepted connection.
func listenConfig() *net.ListenConfig {
	return &net.ListenConfig{KeepAliveConfig: KeepAlive}
}
