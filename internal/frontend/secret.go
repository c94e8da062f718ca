package frontend

import (
	"context"
	"errors"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/reason"
	"github.com/pgvalve/pgvalve/internal/session"
)

// secret is the stored secret of the client's user (Config.Secret), looked
// up within the login deadline. A lookup that fails (auth_query's server
// down, auth_user refused, the query broken) refuses the client: 08006
// when the server did not answer, F0000 otherwise; the log has the
// error, which holds no secret.
func (d *door) secret(ctx context.Context, c session.Client) (auth.Secret, bool, error) {
	if !d.loginBy.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.loginBy)
		defer cancel()
	}
	secret, found, err := d.cfg.Secret(ctx, c.Database, c.User)
	if err == nil {
		return secret, found, nil
	}
	if errors.Is(err, context.Canceled) {
		return auth.Secret{}, false, err // the client is being ended (shutdown, KILL)
	}
	r := reason.AuthQueryFailed
	var down interface{ Unreachable() bool }
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &down) && down.Unreachable() {
		r = reason.AuthQueryUnreachable
	}
	d.log.Warn("could not look up the user's secret", "err", err)
	return auth.Secret{}, false, d.refuse(r, c.User)
}
