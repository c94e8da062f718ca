package app

import (
	"context"
	"errors"
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
		conn, hosts, err := a.authConn(cfg, authDB)
		if err != nil {
			return auth.Secret{}, false, &authquery.Error{Step: "finding auth_dbname", Err: err}
		}
		return runOnFirstThatAnswers(ctx, conn, hosts, cfg.AuthQuery, user)
	})
}

// runOnFirstThatAnswers runs auth_query on the route's hosts in their
// listed order, going on to the next only when one does not answer: any
// host has the same roles and secrets (a replica's are its primary's), so
// a host that is down must not lock every client out. A host that answers
// with an error gives that error.
func runOnFirstThatAnswers(ctx context.Context, conn backend.Config, hosts []config.Address, sql, user string) (auth.Secret, bool, error) {
	var err error
	for _, h := range hosts {
		conn.Host, conn.Port = h.Host, h.Port
		var secret auth.Secret
		var found bool
		secret, found, err = authquery.Run(ctx, conn, sql, user)
		if aqErr, ok := errors.AsType[*authquery.Error](err); !ok || !aqErr.Unreachable() || ctx.Err() != nil {
			return secret, found, err
		}
	}
	return auth.Secret{}, false, err
}

// authConn is how to log in as auth_user to db's server: the route's
// server database and hosts, with auth_user's password from auth_file (a
// plain secret), else the URL's when it names auth_user or no user, else
// from PGPASSWORD or the password file.
func (a *App) authConn(cfg config.Config, db string) (backend.Config, []config.Address, error) {
	route, ok := cfg.PoolFor(db)
	if !ok {
		return backend.Config{}, nil, fmt.Errorf("no route for database %q", db)
	}
	target, err := cfg.Target(route)
	if err != nil {
		return backend.Config{}, nil, err
	}
	conn := dialConfig(cfg, target, db, cfg.AuthUser)
	conn.User, conn.Password, conn.EnvPassword = cfg.AuthUser, "", true
	if s, ok := a.users.Load().Lookup(cfg.AuthUser); ok && s.Kind == auth.KindPlain {
		conn.Password = s.Plain
	} else if target.User == "" || target.User == cfg.AuthUser {
		conn.Password = target.Password
	}
	conn.ConnectTimeout = cfg.ServerConnectTimeout
	return conn, target.Hosts, nil
}
