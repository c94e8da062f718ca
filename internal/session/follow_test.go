package session

import (
	"slices"
	"testing"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// send books q as one simple Query on c.
func send(c *clientSets, q string) {
	c.sent([]byte(q), sqlscan.Effects(q))
	c.asked++
}

// Settings count once their request or transaction ends well, and are
// replayed as the client wrote them.
func TestClientSetsCountOnlyWhatCommitted(t *testing.T) {
	var c clientSets
	send(&c, "SET statement_timeout = '5s'; set myapp.user_id to 42")
	if noted, key := c.ready('I'); !noted || key != c.replay.Key {
		t.Fatalf("ready = %v, %q", noted, key)
	}
	want := []string{`SET "statement_timeout" TO '5s'`, `SET "myapp"."user_id" TO 42`}
	if !slices.Equal(c.replay.SQL, want) {
		t.Fatalf("replay = %q, want %q", c.replay.SQL, want)
	}

	send(&c, "begin")
	c.ready('T')
	send(&c, "set work_mem = '1MB'")
	c.ready('T')
	send(&c, "rollback")
	c.rolledBack = true
	if noted, key := c.ready('I'); !noted || key != backend.StaleSets {
		t.Fatalf("after a rollback: ready = %v, %q; want the server's settings marked unknown", noted, key)
	}
	if len(c.replay.SQL) != 2 {
		t.Fatalf("a rolled back SET counted: %q", c.replay.SQL)
	}

	send(&c, "select set_config('search_path', 'a, b', false)")
	send(&c, "SET TIME ZONE 'UTC'")
	c.failed = true
	c.ready('I') // the first request failed
	c.ready('I')
	want = append(want, `SET TIME ZONE 'UTC'`)
	if !slices.Equal(c.replay.SQL, want) {
		t.Fatalf("replay = %q, want %q", c.replay.SQL, want)
	}

	send(&c, "reset statement_timeout; set myapp.user_id = default; select set_config('x.y', 'it''s', false)")
	c.ready('I')
	want = []string{`SET TIME ZONE 'UTC'`, `SELECT pg_catalog.set_config('x.y', 'it''s', false)`}
	if !slices.Equal(c.replay.SQL, want) {
		t.Fatalf("replay = %q, want %q", c.replay.SQL, want)
	}
	send(&c, "discard all")
	c.ready('I')
	if c.replay.Key != "" || len(c.replay.SQL) != 0 {
		t.Fatalf("after DISCARD ALL: %q", c.replay.SQL)
	}
}

// A value with a line comment is replayed so the comment ends with it.
func TestClientSetsKeepCommentsInTheirValue(t *testing.T) {
	var c clientSets
	send(&c, "set a.b = 1 -- why")
	c.ready('I')
	if got := c.replay.SQL; len(got) != 1 || got[0] != "SET \"a\".\"b\" TO 1 -- why\n" {
		t.Fatalf("replay = %q", got)
	}
}

// set_config with a bind parameter cannot be replayed: it pins.
func TestASetConfigWithParametersIsNotReplayable(t *testing.T) {
	for q, want := range map[string]bool{
		"select set_config($1, $2, false)":     false,
		"select set_config('a.b', $1, false)":  false,
		"select set_config('a.b', 'v', false)": true,
		"set a.b = $$x$$":                      true,
		"select set_config('a.b', 'v', true)":  true,
	} {
		if got := replayable([]byte(q), sqlscan.Effects(q)); got != want {
			t.Errorf("replayable(%q) = %v, want %v", q, got, want)
		}
	}
}
