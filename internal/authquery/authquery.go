// Package authquery finds the secrets of users auth_file does not list,
// as PgBouncer does: it runs auth_query with the user name as $1 on a
// server connection logged in as auth_user (Run), and remembers each
// answer, found or not, for a few seconds, one query shared by concurrent
// logins of the same user (Cache).
package authquery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/backend"
)

// Error is a lookup that could not be run or answered: the server could
// not be reached, auth_user could not log in, the query failed or returned
// something that is not (name, secret). Its text never holds a secret.
type Error struct {
	Step string // what failed: `logging in as auth_user "x"`, "running auth_query", ...
	Err  error
}

func (e *Error) Error() string { return "auth_query: " + e.Step + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Unreachable says the server did not answer (the network, a timeout),
// as against one that refused auth_user or failed the query.
func (e *Error) Unreachable() bool {
	var pgErr *pgconn.PgError
	var netErr net.Error
	return !errors.As(e.Err, &pgErr) && (errors.As(e.Err, &netErr) || errors.Is(e.Err, context.DeadlineExceeded))
}

// maxSecret bounds a secret the query returns; PostgreSQL's verifiers are
// about 130 bytes.
const maxSecret = 4096

// Run logs in as conn says (auth_user), runs sql with user as its only
// parameter over the extended protocol (never spliced into the text) and
// reads the first row's second column as the user's secret. No row, a
// NULL or an empty secret: found is false, as for a user that does not
// exist.
func Run(ctx context.Context, conn backend.Config, sql, user string) (secret auth.Secret, found bool, err error) {
	pg, err := backend.Connect(ctx, conn)
	if err != nil {
		return auth.Secret{}, false, &Error{Step: fmt.Sprintf("logging in as auth_user %q", conn.User), Err: err}
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = pg.Close(closeCtx)
	}()
	rr := pg.ExecParams(ctx, sql, [][]byte{[]byte(user)}, nil, nil, nil)
	columns := len(rr.FieldDescriptions())
	var value []byte
	rows := 0
	for rr.NextRow() {
		if rows++; rows == 1 && len(rr.Values()) == 2 {
			value = append([]byte(nil), rr.Values()[1]...)
			found = rr.Values()[1] != nil
		}
	}
	if _, err := rr.Close(); err != nil {
		return auth.Secret{}, false, &Error{Step: "running it", Err: err}
	}
	if columns != 2 {
		return auth.Secret{}, false, &Error{Step: "reading its answer", Err: fmt.Errorf("it returned %d columns; want 2 (name, secret)", columns)}
	}
	if !found || len(value) == 0 {
		return auth.Secret{}, false, nil
	}
	if len(value) > maxSecret {
		return auth.Secret{}, false, &Error{Step: "reading its answer", Err: fmt.Errorf("the secret is %d bytes long; at most %d", len(value), maxSecret)}
	}
	secret, err = auth.ParseSecret(string(value))
	if err != nil {
		return auth.Secret{}, false, &Error{Step: "reading its answer", Err: err} // ParseSecret never quotes it
	}
	return secret, true, nil
}
