package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/pgvalve/pgvalve/internal/app"
	"github.com/pgvalve/pgvalve/internal/session"
	"github.com/pgvalve/pgvalve/internal/takeover"
)

// Online restart (README, "Online restart"). The new process (run with
// --takeover) asks the running one over its takeover socket; the running
// one hands over its listening sockets and stops accepting once the new
// one serves on them, so no connection attempt is refused in between: the
// kernel keeps one queue of connections, which both processes share for a
// moment. The old one then hands over each client as it reaches a safe
// point (one it cannot describe drains as SIGTERM drains it), and exits.

// handshakeTimeout bounds each step of a takeover's start; the drain that
// follows runs under shutdown_timeout.
const handshakeTimeout = 30 * time.Second

// bound is what a pgvalve listens on: its client listeners, and the HTTP
// listener of metrics_listen (nil when off).
type bound struct {
	clients *app.Listeners
	http    net.Listener
}

// listen binds the configured addresses, or, with --takeover, receives
// them from the running pgvalve, returning the connection to it.
func (s *server) listen(a *app.App) (bound, *takeover.Conn, error) {
	if !s.takeover {
		ln, err := a.Listen()
		if err != nil {
			return bound{}, nil, err
		}
		b := bound{clients: ln.(*app.Listeners)}
		if s.cfg.MetricsListen != "" {
			if b.http, err = net.Listen("tcp", s.cfg.MetricsListen); err != nil {
				ln.Close()
				return bound{}, nil, err
			}
		}
		return b, nil, nil
	}
	port, _ := strconv.Atoi(portOf(s.cfg.Listen)) // 0: not a fixed port
	path := s.cfg.TakeoverPath(port)
	if path == "" {
		return bound{}, nil, errors.New("--takeover: no takeover socket: set takeover_socket, or unix_socket_dir and a fixed listen port")
	}
	c, err := takeover.Dial(path, handshakeTimeout)
	if err != nil {
		return bound{}, nil, err
	}
	b, err := receiveListeners(c)
	if err != nil {
		c.Close()
		return bound{}, nil, fmt.Errorf("--takeover from %s: %w", path, err)
	}
	s.log.Info("took over the listening sockets", "from", path)
	return b, c, nil
}

// receiveListeners asks for the running pgvalve's listeners.
func receiveListeners(c *takeover.Conn) (bound, error) {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.Send(takeover.KindHello, takeover.Hello{Version: takeover.Version, PID: os.Getpid()}); err != nil {
		return bound{}, err
	}
	var msg takeover.Listeners
	files, err := c.Expect(takeover.KindListeners, &msg)
	if err != nil {
		return bound{}, err
	}
	defer takeover.CloseAll(files) // net.FileListener makes copies
	switch {
	case msg.Version != takeover.Version:
		return bound{}, fmt.Errorf("the running pgvalve speaks takeover version %d, this one %d", msg.Version, takeover.Version)
	case len(files) != len(msg.Names):
		return bound{}, fmt.Errorf("%d listeners named, %d came", len(msg.Names), len(files))
	}
	got := map[string]net.Listener{}
	for i, name := range msg.Names {
		ln, err := net.FileListener(files[i])
		if err != nil {
			for _, l := range got {
				l.Close()
			}
			return bound{}, fmt.Errorf("listener %s: %w", name, err)
		}
		got[name] = ln
	}
	if got["tcp"] == nil {
		return bound{}, errors.New("no TCP listener came")
	}
	return bound{clients: app.ListenOn(got["tcp"], got["unix"]), http: got["http"]}, nil
}

// passCancels delivers the cancel requests the new process passes on for
// clients still here, until the connection closes.
func passCancels(a *app.App, c *takeover.Conn) {
	for {
		var req takeover.Cancel
		if _, err := c.Expect(takeover.KindCancel, &req); err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, _ = a.Cancels().Cancel(ctx, req.PID, req.Secret)
		cancel()
	}
}

// taken finishes a takeover in the new process, which serves already:
// the old one stops accepting when told, hands over its clients as each
// reaches a safe point, and says when it is done.
func (s *server) taken(a *app.App, c *takeover.Conn) error {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	if err := c.Send(takeover.KindServing, nil); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Time{}) // the old one drains under its shutdown_timeout
	// A cancel request for a client still in the old process reaches this
	// one now (it owns the listeners): pass it on.
	a.Cancels().SetElsewhere(func(_ context.Context, pid uint32, secret []byte) error {
		return c.Send(takeover.KindCancel, takeover.Cancel{PID: pid, Secret: secret})
	})
	defer a.Cancels().SetElsewhere(nil)
	for {
		var msg json.RawMessage
		kind, files, err := c.Recv(&msg)
		if err != nil {
			return fmt.Errorf("the old pgvalve went before it said it was done: %w", err)
		}
		switch kind {
		case takeover.KindClient:
			adopt(a, msg, files)
		case takeover.KindDone:
			var done takeover.Done
			_ = json.Unmarshal(msg, &done)
			s.log.Info("takeover done: the old pgvalve is exiting", "clients_handed_over", done.HandedOver, "clients_ended_there", done.Ended)
			return nil
		}
	}
}

// adopt carries on a client the old process handed over: one descriptor
// and its state.
func adopt(a *app.App, msg json.RawMessage, files []*os.File) {
	defer takeover.CloseAll(files) // net.FileConn makes its own copy
	var h session.Handoff
	if len(files) != 1 || json.Unmarshal(msg, &h) != nil {
		return
	}
	conn, err := net.FileConn(files[0])
	if err != nil {
		return
	}
	a.Adopt(conn, &h)
}

// offer waits at the takeover socket for a new pgvalve, and hands it the
// listeners of b. It sends the connection to a new process that serves on
// them to took, and returns; it returns nil at once when there is no
// takeover socket, or when stop ends first.
func (s *server) offer(ctx context.Context, b bound, took chan<- *takeover.Conn) {
	path := s.cfg.TakeoverPath(b.clients.Addr().(*net.TCPAddr).Port)
	if path == "" {
		return
	}
	for ctx.Err() == nil {
		ln, err := takeover.Listen(path)
		if err != nil {
			s.log.Warn("online restart is off: the takeover socket is not open", "err", err)
			return
		}
		stop := context.AfterFunc(ctx, func() { ln.Close() })
		c, err := ln.Accept()
		stop()
		ln.Close() // one takeover at a time; the new process opens its own
		if err != nil {
			return
		}
		if err := handListeners(c, b); err != nil {
			s.log.Warn("a takeover failed; still serving", "err", err)
			c.Close()
			continue
		}
		took <- c
		return
	}
}

// handListeners answers a new process's Hello with the listeners and
// waits until it serves on them.
func handListeners(c *takeover.Conn, b bound) error {
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	var hello takeover.Hello
	if _, err := c.Expect(takeover.KindHello, &hello); err != nil {
		return err
	}
	if hello.Version != takeover.Version {
		return fmt.Errorf("the new pgvalve speaks takeover version %d, this one %d", hello.Version, takeover.Version)
	}
	var names []string
	var fds []int
	add := func(name string, ln net.Listener) error {
		if ln == nil {
			return nil
		}
		return takeover.RawFD(ln, func(fd int) error {
			names, fds = append(names, name), append(fds, fd)
			return nil
		})
	}
	if err := errors.Join(add("tcp", b.clients.Listener), add("unix", b.clients.Unix), add("http", b.http)); err != nil {
		return err
	}
	// The descriptors are this process's own, not copies; the listeners
	// stay open until it stops accepting, which is after this.
	if err := c.Send(takeover.KindListeners, takeover.Listeners{Version: takeover.Version, PID: os.Getpid(), Names: names}, fds...); err != nil {
		return err
	}
	if _, err := c.Expect(takeover.KindServing, nil); err != nil {
		return err
	}
	_ = c.SetDeadline(time.Time{})
	return nil
}

// handOver ends this pgvalve once a new one serves on its listeners: the
// HTTP listener first (so health checks reach the new one), then the
// clients, each handed over or drained, under shutdown_timeout (a SIGTERM
// or SIGINT meanwhile closes those left at once).
func (s *server) handOver(a *app.App, b bound, c *takeover.Conn, stopHTTP func(), sigs <-chan os.Signal) {
	cancels := make(chan struct{})
	go func() { defer close(cancels); passCancels(a, c) }()
	defer func() { c.Close(); <-cancels }()
	s.log.Info("a new pgvalve took over the listening sockets: draining", "shutdown_timeout", s.cfg.ShutdownTimeout)
	stopHTTP()
	b.clients.KeepFile()
	ctx, done := s.draining(sigs) // a SIGTERM or SIGINT stops waiting, as in a drain
	defer done()
	went, ended := a.HandOver(ctx, func(conn net.Conn, h *session.Handoff) error {
		return takeover.RawFD(conn, func(fd int) error { return c.Send(takeover.KindClient, h, fd) })
	})
	s.log.Info("takeover done: exiting", "clients_handed_over", went, "clients_ended_here", ended)
	if err := c.Send(takeover.KindDone, takeover.Done{HandedOver: went, Ended: ended}); err != nil {
		s.log.Warn("could not tell the new pgvalve the takeover is done", "err", err)
	}
}
