//go:build linux

package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/pgvalve/pgvalve/internal/relaylab"
)

// run serves until SIGINT or SIGTERM.
func run(listen, url string, size int) error {
	r, err := relaylab.Start(relaylab.Options{Design: relaylab.Pooled, Listen: listen, URL: url, PoolSize: size})
	if err != nil {
		return err
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	return r.Close()
}
