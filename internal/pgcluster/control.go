package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stop shuts the server down (fast, then immediate) and removes its
// directories. It only touches the server on its own data directory and is
// safe to call more than once.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	c.stopped = true

	var errs []error
	if err := c.StopServer("fast"); err != nil {
		if err2 := c.StopServer("immediate"); err2 != nil {
			errs = append(errs, err, err2)
		}
	}
	if c.watchdogPipe != nil {
		c.watchdogPipe.Close() // EOF makes the watchdog run its cleanup now
		if err := c.watchdog.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: watchdog: %w", err))
		}
	}
	if c.root != "" {
		if err := os.RemoveAll(c.root); err != nil {
			errs = append(errs, fmt.Errorf("pgcluster: %w", err))
		}
	}
	return errors.Join(errs...)
}

// StopServer stops the server with pg_ctl stop -m mode ("smart", "fast" or
// "immediate") and keeps the data directory so StartServer can bring it back.
// Stopping a server that is not running is not an error.
func (c *Cluster) StopServer(mode string) error {
	switch mode {
	case "smart", "fast", "immediate":
	default:
		return fmt.Errorf("pgcluster: unknown shutdown mode %q", mode)
	}
	if _, err := os.Stat(filepath.Join(c.DataDir, "postmaster.pid")); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	_, err := c.run("pg_ctl", "stop", "-D", c.DataDir, "-m", mode, "-w",
		"-t", strconv.Itoa(int(pgCtlTimeout.Seconds())), "-s")
	return err
}

// StartServer starts a stopped server again on the same port and data dir.
func (c *Cluster) StartServer() error {
	_, err := c.startServer()
	return err
}

// Restart is StopServer(mode) followed by StartServer.
func (c *Cluster) Restart(mode string) error {
	if err := c.StopServer(mode); err != nil {
		return err
	}
	return c.StartServer()
}

// startServer runs pg_ctl start and reports whether a failure was postgres
// being unable to bind its port.
func (c *Cluster) startServer() (bindFailed bool, err error) {
	var offset int64
	if fi, err := os.Stat(c.logFile); err == nil {
		offset = fi.Size()
	}
	// -l sends the server's output to the log, so no child holds our stdout.
	_, err = c.run("pg_ctl", "start", "-D", c.DataDir, "-l", c.logFile, "-w",
		"-t", strconv.Itoa(int(pgCtlTimeout.Seconds())), "-s")
	if err == nil {
		return false, nil
	}
	tail := logTail(c.logFile, offset)
	bindFailed = strings.Contains(tail, "could not bind") ||
		strings.Contains(tail, "could not create any TCP/IP sockets")
	return bindFailed, fmt.Errorf("%w\nserver log (%s):\n%s", err, c.logFile, tail)
}
