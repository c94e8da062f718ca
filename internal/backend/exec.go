package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/reason"
)

// defaultExecTimeout bounds pgvalve's own queries (reset, parameter sync)
// when the caller's context sets no deadline.
const defaultExecTimeout = 30 * time.Second

// Exec runs one simple query of pgvalve's own (a reset, parameter changes)
// and reads up to its ReadyForQuery. Notices are dropped; ParameterStatus
// and the transaction status are tracked. A server error comes back as
// *pgconn.PgError and leaves the connection usable; an I/O error or a
// timeout marks it broken.
func (c *Conn) Exec(ctx context.Context, sql string) error {
	return c.exec(ctx, sql, nil)
}

// QueryRow runs one simple query of pgvalve's own and returns the first
// row's columns as text, nil for NULL; no row at all is an error. Errors
// and the connection's state are as Exec's.
func (c *Conn) QueryRow(ctx context.Context, sql string) ([]*string, error) {
	var row []*string
	seen := false
	err := c.exec(ctx, sql, func(body []byte) error {
		if seen {
			return nil
		}
		seen = true
		var d pgproto3.DataRow
		if err := d.Decode(body); err != nil {
			return fmt.Errorf("backend: malformed data row: %w", err)
		}
		for _, v := range d.Values {
			if v == nil {
				row = append(row, nil)
				continue
			}
			s := string(v)
			row = append(row, &s)
		}
		return nil
	})
	if err == nil && !seen {
		err = errors.New("backend: the query returned no row")
	}
	return row, err
}

// exec sends sql and reads its answer, handing each DataRow's body to row
// (when given; rows are skipped otherwise).
func (c *Conn) exec(ctx context.Context, sql string, row func([]byte) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	if c.broken != reason.None {
		return fmt.Errorf("backend: connection broken: %s", c.Broken())
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(defaultExecTimeout)
	}
	_ = c.netConn.SetDeadline(dl)
	defer c.netConn.SetDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { _ = c.netConn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	q := pgproto3.Query{String: sql}
	buf, err := q.Encode(nil)
	if err != nil {
		return err
	}
	if _, err := c.netConn.Write(buf); err != nil {
		c.MarkBroken(reason.ServerWriteFailed, err.Error())
		return fmt.Errorf("backend: exec: %w", err)
	}
	return c.readUntilReady(row)
}

// readUntilReady reads the answer to pgvalve's own query up to its
// ReadyForQuery, returning the first error. Rows go to row, or are skipped
// whatever their size, as notices are.
func (c *Conn) readUntilReady(row func([]byte) error) error {
	var firstErr error
	for {
		f, ok, err := c.rd.Next()
		if err != nil {
			c.MarkBroken(reason.ServerReadFailed, err.Error())
			return fmt.Errorf("backend: exec: %w", err)
		}
		if !ok {
			c.rd.Take()
			if err := c.rd.Fill(); err != nil {
				c.MarkBroken(reason.ServerReadFailed, err.Error())
				return fmt.Errorf("backend: exec: %w", err)
			}
			continue
		}
		switch f.Type {
		case 'D':
			if row == nil {
				break
			}
			err := errors.New("backend: a row larger than the read buffer") // pgvalve's own rows are small
			if f.Body != nil {
				err = row(f.Body)
			}
			if err != nil && firstErr == nil {
				firstErr = err
			}
		case 'E':
			if firstErr == nil {
				firstErr = DecodeError(f.Body) // read whole: see decoded
			}
		case 'S', 'Z':
			c.observe(f.Type, f.Body)
			if f.Type == 'Z' {
				c.rd.Take()
				return firstErr
			}
		case 'G', 'H', 'W':
			// COPY has no place in pgvalve's own queries.
			c.rd.Take()
			c.MarkBroken(reason.ServerUnexpectedCopy, "")
			return errors.New("backend: exec: unexpected COPY response")
		}
	}
}

func (c *Conn) observe(typ byte, body []byte) {
	switch typ {
	case 'Z':
		if len(body) == 1 {
			c.txStatus = body[0]
		}
	case 'S':
		var ps pgproto3.ParameterStatus
		if ps.Decode(body) == nil {
			c.params[ps.Name] = ps.Value
			c.synced, c.reportedKey = "", ""
		}
	}
}

// DecodeError turns an ErrorResponse body into a *pgconn.PgError.
func DecodeError(body []byte) error {
	var er pgproto3.ErrorResponse
	if err := er.Decode(body); err != nil {
		return fmt.Errorf("backend: malformed error response: %w", err)
	}
	return pgconn.ErrorResponseToPgError(&er)
}
