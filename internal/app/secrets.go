package app

import (
	"context"
	"fmt"
	"time"

	"github.com/pgvalve/pgvalve/internal/auth"
	"github.com/pgvalve/pgvalve/internal/authquery"
	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/console"
)

// authQueryFresh is how long an auth_query answer (found or not) is used
// without asking again: a reconnect storm costs one query per user, and a
// changed or revoked password stops working within seconds.
// authQueryMax bounds the answers kept (a flood of made-up names).
const (
	authQueryFresh = 5 * time.Second
	authQueryMax   = 10000
)

// secret is the stored secret of user logging in to db: auth_file's, else,
// when auth_user is set, what auth_query returns (cached, see authquery).
// The admin console's users come only from auth_file, as in PgBouncer.
// It is the one place a user's secret is found: a server login that needs
// the secret the client proved (md5 or SCRAM keys) can ask it too.
func (a *App) secret(ctx context.Context, db, user string) (auth.Secret, bool, error) {
	if s, ok := a.users.Load().Lookup(user); ok {
		return s, true, nil
	}
	cfg := a.config()
	if cfg.AuthUser == "" || console.IsConsole(db) {
		return auth.Secret{}, false, nil
	}
	authDB := cfg.AuthDBName
	if authDB == "" {
		authDB = db
	}
	key := authquery.Key{Database: authDB, AuthUser: cfg.AuthUser, Query: cfg.AuthQuery, User: user}
	return a.authQuery.Get(ctx, key, func(ctx context.Context) (auth.Secret, bool, error) {
		conn, err := a.authConn(cfg, authDB)
		if err != nil {
			return auth.Secret{}, false, &authquery.Error{Step: "finding auth_dbname", Err: err}
		}
		return authquery.Run(ctx, conn, cfg.AuthQuery, user)
	})
}

// authConn is how to log in as auth_user to db's server: the route's host
// and server database, with auth_user's password from auth_file (a plain
// secret), else the URL's when it names auth_user or no user, else from
// PGPASSWORD or the password file.
func (a *App) authConn(cfg config.Config, db string) (backend.Config, error) {
	route, ok := cfg.PoolFor(db)
	if !ok {
		return backend.Config{}, fmt.Errorf("no route for database %q", db)
	}
	conn, err := dialConfig(cfg, route, db, cfg.AuthUser)
	if err != nil {
		return backend.Config{}, err
	}
	up, err := config.ParseUpstream(route.Upstream)
	if err != nil {
		return backend.Config{}, err
	}
	conn.User, conn.Password, conn.EnvPassword = cfg.AuthUser, "", true
	if s, ok := a.users.Load().Lookup(cfg.AuthUser); ok && s.Kind == auth.KindPlain {
		conn.Password = s.Plain
	} else if up.User == "" || up.User == cfg.AuthUser {
		conn.Password = up.Password
	}
	conn.ConnectTimeout = cfg.ServerConnectTimeout
	return conn, nil
}
