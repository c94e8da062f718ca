package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// Schema is where the benchmark keeps its tables, apart from the
// database's own.
const Schema = "pgvalve_bench"

// Setup creates the schema and its seed data (scale × 1,000 users, 5
// posts each, 2 comments a post), replacing any left from before.
func Setup(ctx context.Context, url string, scale int) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	n := scale * 1000
	for _, sql := range []string{
		"DROP SCHEMA IF EXISTS " + Schema + " CASCADE",
		"CREATE SCHEMA " + Schema,
		`CREATE TABLE ` + Schema + `.users (id bigint PRIMARY KEY, name text NOT NULL, email text NOT NULL UNIQUE,
			created_at timestamptz NOT NULL)`,
		`CREATE TABLE ` + Schema + `.posts (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES ` + Schema + `.users,
			title text NOT NULL, body text NOT NULL, views int NOT NULL DEFAULT 0, created_at timestamptz NOT NULL)`,
		`CREATE TABLE ` + Schema + `.comments (id bigserial PRIMARY KEY, post_id bigint NOT NULL REFERENCES ` + Schema + `.posts,
			user_id bigint NOT NULL, body text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`,
		fmt.Sprintf(`INSERT INTO %s.users SELECT g, 'user ' || g, 'user' || g || '@example.com', now() - g * interval '1 minute'
			FROM generate_series(1, %d) g`, Schema, n),
		fmt.Sprintf(`INSERT INTO %s.posts (id, user_id, title, body, created_at) SELECT g, 1 + g %% %d, 'post ' || g,
			repeat('lorem ipsum ', 20), now() - g * interval '10 seconds' FROM generate_series(1, %d) g`, Schema, n, 5*n),
		fmt.Sprintf(`INSERT INTO %s.comments (post_id, user_id, body) SELECT 1 + g %% %d, 1 + (g * 7) %% %d, 'comment ' || g
			FROM generate_series(1, %d) g`, Schema, 5*n, n, 10*n),
		"CREATE INDEX ON " + Schema + ".posts (user_id, created_at DESC)",
		"CREATE INDEX ON " + Schema + ".comments (post_id)",
		"ANALYZE " + Schema + ".users, " + Schema + ".posts, " + Schema + ".comments",
	} {
		if _, err := c.Exec(ctx, sql); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	return nil
}

// Teardown drops the schema and all in it.
func Teardown(ctx context.Context, url string) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("teardown: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	_, err = c.Exec(ctx, "DROP SCHEMA IF EXISTS "+Schema+" CASCADE")
	return err
}

// step is one statement of a query, with its arguments.
type step struct {
	sql  string
	args []any
}

// query is one thing a page asks of the database: a statement, or a
// transaction of several, with a pause inside (holding the connection, as
// an interactive transaction does) before its last.
type query struct {
	kind  string
	steps []step
	hold  time.Duration
}

// kind is one entry of the mix: its weight and how to make one.
type kind struct {
	name   string
	weight int
	make   func(r *rand.Rand, n int64) query
}

// mix is the web app's queries and how often each comes: indexed reads,
// lists, a join, a count, an aggregate, short writes, and an interactive
// transaction that holds its connection for 20 ms.
var mix = []kind{
	{"user by id", 30, func(r *rand.Rand, n int64) query {
		return one("user by id", "SELECT id, name, email FROM "+Schema+".users WHERE id = $1", 1+r.Int64N(n))
	}},
	{"posts of a user", 20, func(r *rand.Rand, n int64) query {
		return one("posts of a user", "SELECT id, title, created_at FROM "+Schema+".posts WHERE user_id = $1 ORDER BY created_at DESC LIMIT 10", 1+r.Int64N(n))
	}},
	{"post with author and comments", 15, func(r *rand.Rand, n int64) query {
		return one("post with author and comments", `SELECT p.id, p.title, u.name, count(c.id) FROM `+Schema+`.posts p
			JOIN `+Schema+`.users u ON u.id = p.user_id LEFT JOIN `+Schema+`.comments c ON c.post_id = p.id
			WHERE p.id = $1 GROUP BY p.id, p.title, u.name`, 1+r.Int64N(5*n))
	}},
	{"comment count", 10, func(r *rand.Rand, n int64) query {
		return one("comment count", "SELECT count(*) FROM "+Schema+".comments WHERE post_id = $1", 1+r.Int64N(5*n))
	}},
	{"posts per hour", 5, func(r *rand.Rand, n int64) query {
		return one("posts per hour", "SELECT date_trunc('hour', created_at), count(*) FROM "+Schema+
			".posts WHERE created_at > now() - interval '6 hours' GROUP BY 1 ORDER BY 1")
	}},
	{"comment and view", 15, func(r *rand.Rand, n int64) query {
		post := 1 + r.Int64N(5*n)
		return query{kind: "comment and view", steps: []step{{sql: "BEGIN"},
			{"INSERT INTO " + Schema + ".comments (post_id, user_id, body) VALUES ($1, $2, 'a comment')", []any{post, 1 + r.Int64N(n)}},
			{"UPDATE " + Schema + ".posts SET views = views + 1 WHERE id = $1", []any{post}},
			{sql: "COMMIT"}}}
	}},
	{"edit a post", 5, func(r *rand.Rand, n int64) query {
		post := 1 + r.Int64N(5*n)
		return query{kind: "edit a post", hold: 20 * time.Millisecond, steps: []step{{sql: "BEGIN"},
			{"SELECT title FROM " + Schema + ".posts WHERE id = $1 FOR UPDATE", []any{post}},
			{"UPDATE " + Schema + ".posts SET title = 'post ' || id || ' (edited)' WHERE id = $1", []any{post}},
			{sql: "COMMIT"}}}
	}},
}

var mixWeight = func() int {
	w := 0
	for _, k := range mix {
		w += k.weight
	}
	return w
}()

func one(name, sql string, args ...any) query {
	return query{kind: name, steps: []step{{sql, args}}}
}

// pick draws a query from the mix; with the config's slow-query rate it is
// a slow one instead.
func (c Config) pick(r *rand.Rand) query {
	if c.SlowQueryRate > 0 && r.Float64() < c.SlowQueryRate {
		return one("slow query", "SELECT pg_sleep($1)", 0.2+0.8*r.Float64())
	}
	n, w := int64(c.Scale)*1000, r.IntN(mixWeight)
	for _, k := range mix {
		if w < k.weight {
			return k.make(r, n)
		}
		w -= k.weight
	}
	panic("unreachable")
}

// idleInTransaction is a page's query that opens a transaction and sits in
// it for a second, as an app that awaits something else mid-transaction.
func idleInTransaction(r *rand.Rand, scale int) query {
	return query{kind: "idle in transaction", hold: time.Second, steps: []step{{sql: "BEGIN"},
		{"SELECT name FROM " + Schema + ".users WHERE id = $1", []any{1 + r.Int64N(int64(scale)*1000)}},
		{sql: "COMMIT"}}}
}

// workerJob is a background worker's periodic job: a report over all
// posts and a small write.
func workerJob(r *rand.Rand, scale int) query {
	return query{kind: "worker job", steps: []step{
		{sql: "SELECT user_id, count(*) FROM " + Schema + ".posts GROUP BY user_id ORDER BY 2 DESC LIMIT 10"},
		{"UPDATE " + Schema + ".users SET name = name WHERE id = $1", []any{1 + r.Int64N(int64(scale)*1000)}},
	}}
}
