package difftest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// Conn is one client connection speaking raw protocol after a normal login.
type Conn struct {
	nc net.Conn
	rd *bufio.Reader
	// Params are the parameters reported at login.
	Params map[string]string
}

// Dial logs in with pgconn (which handles authentication), sending params
// in the startup packet besides the connection string's, and takes the
// socket over.
func Dial(ctx context.Context, connString string, params map[string]string) (*Conn, error) {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return nil, err
	}
	maps.Copy(cfg.RuntimeParams, params)
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	// A background read pgconn may still have in flight from login would
	// swallow the first answer: SyncConn stops it, as Hijack asks.
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	if tc, ok := hc.Conn.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true) // Go's default, said out loud: every Write is its own segment
	}
	return &Conn{nc: hc.Conn, rd: bufio.NewReaderSize(hc.Conn, 64*kib), Params: hc.ParameterStatuses}, nil
}

// Close sends Terminate and closes the socket.
func (c *Conn) Close() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.nc.Write([]byte{'X', 0, 0, 0, 4})
	_ = c.nc.Close()
}

// Reply is what a connection answered to one step.
type Reply struct {
	Msgs []Msg
	// Err is why reading stopped before the expected end (a closed
	// connection, the step's deadline), nil when the answer was complete.
	Err error
}

// Exchange writes the step's batch, split at its cuts, while reading the
// answer until the step's ReadyForQuery count and extra messages arrive,
// the connection ends, or timeout passes; with want, also as soon as a
// message differs from want's (Normalize applied). Writing runs beside
// reading because PostgreSQL answers while it still reads: a large batch
// with large answers would otherwise fill both sockets and wait forever.
func (c *Conn) Exchange(st Step, wire []byte, timeout time.Duration, want []Msg) Reply {
	_ = c.nc.SetDeadline(time.Now().Add(timeout))
	defer c.nc.SetDeadline(time.Time{})
	var wg sync.WaitGroup
	var werr error
	wg.Go(func() { werr = c.write(wire, st.Cuts, st.Pause) })
	r, complete := c.read(st.Ready, st.Extra, st.Notifies, want)
	if !complete {
		_ = c.nc.SetDeadline(time.Unix(1, 0)) // stops a writer the other side may no longer read
	}
	wg.Wait()
	if r.Err == nil && werr != nil {
		r.Err = fmt.Errorf("write: %w", werr)
	}
	return r
}

// write sends b in pieces at cuts; pause sleeps between them so that the
// receiving side's reads return the pieces separately.
func (c *Conn) write(b []byte, cuts []int, pause bool) error {
	start := 0
	for _, at := range slices.Concat(cuts, []int{len(b)}) {
		if at <= start || at > len(b) {
			continue
		}
		if start > 0 && pause {
			time.Sleep(time.Millisecond)
		}
		if _, err := c.nc.Write(b[start:at]); err != nil {
			return err
		}
		start = at
	}
	return nil
}

// read reads the answer, with notifies NotificationResponses anywhere in
// it; complete is false when it stopped early (an error, a FATAL, a
// message that differs from want's).
func (c *Conn) read(ready, extra, notifies int, want []Msg) (r Reply, complete bool) {
	for ready > 0 || extra > 0 || notifies > 0 {
		m, err := ReadMsg(c.rd)
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			r.Err = err
			return r, false
		}
		r.Msgs = append(r.Msgs, m)
		if IsFatal(m) {
			r.Err = errFatal
			return r, false
		}
		if i := len(r.Msgs) - 1; want != nil && (i >= len(want) || !Equal(want[i], m)) {
			return r, false
		}
		switch {
		case m.Type == 'A' && notifies > 0:
			notifies--
		case m.Type == 'Z':
			ready--
		case ready == 0:
			extra--
		}
	}
	return r, true
}

// errFatal stops reading after a FATAL error: the connection ends.
var errFatal = errors.New("FATAL error: the connection ends")
