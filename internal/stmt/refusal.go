package stmt

import (
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// refusal is the error a simple query gets from pgvalve before any of it
// runs, when its SQL names prepared statements where pgvalve cannot follow
// it: pgvalve's own server-side names, a client's protocol-level statement
// run with SQL EXECUTE or deallocated among other statements, or a SQL
// PREPARE of a name the client already has (PostgreSQL's 42P05). Other
// SQL-level prepared statements pass through (see README). ErrWait when a
// name the query uses depends on an earlier, unanswered Sync group.
func (t *Tracker) refusal(body []byte) (code, msg string, err error) {
	if len(body) < 2 || !namesPrepared(body) {
		return "", "", nil
	}
	sts := sqlscan.Statements(string(body[:len(body)-1]), 3)
	for _, st := range sts {
		verb, name, ok := preparedName(st.Words)
		if !ok {
			continue
		}
		if strings.HasPrefix(name, serverPrefix) {
			if verb == "prepare" {
				return "42939", `prepared statement names starting with "` + serverPrefix + `" are reserved by pgvalve`, nil
			}
			return "26000", `prepared statement "` + name + `" does not exist`, nil
		}
		if t.regTentative(name) {
			return "", "", ErrWait
		}
		if _, known := t.reg.Get(name); !known {
			continue
		}
		switch {
		case verb == "prepare":
			return "42P05", `prepared statement "` + name + `" already exists`, nil
		case verb == "execute":
			return "0A000", `pgvalve: SQL EXECUTE of prepared statement "` + name +
				`", made with Parse, is not supported in transaction pooling; run it with Bind and Execute`, nil
		case len(sts) > 1:
			return "0A000", `pgvalve: DEALLOCATE of prepared statement "` + name +
				`" among other statements of one query is not supported in transaction pooling; send it on its own`, nil
		}
	}
	return "", "", nil
}

// preparedName reads a statement's leading words for the prepared
// statement it names: PREPARE name, EXECUTE name, DEALLOCATE [PREPARE]
// name (not ALL, not PREPARE TRANSACTION).
func preparedName(w []sqlscan.Word) (verb, name string, ok bool) {
	if len(w) < 2 {
		return "", "", false
	}
	switch {
	case w[0].Is("prepare") && !w[1].Is("transaction"):
		return "prepare", w[1].Name(), true
	case w[0].Is("execute"):
		return "execute", w[1].Name(), true
	case w[0].Is("deallocate"):
		target := w[1]
		if target.Is("prepare") {
			if len(w) < 3 {
				return "", "", false
			}
			target = w[2]
		}
		if target.Is("all") {
			return "", "", false
		}
		return "deallocate", target.Name(), true
	}
	return "", "", false
}

// namesPrepared is a cheap first look: the words PREPARE, EXECUTE or
// DEALLOCATE appear somewhere in the text, in any case.
func namesPrepared(b []byte) bool {
	for i, c := range b {
		switch c | 0x20 {
		case 'p':
			if hasFoldPrefix(b[i+1:], "repare") {
				return true
			}
		case 'e':
			if hasFoldPrefix(b[i+1:], "xecute") {
				return true
			}
		case 'd':
			if hasFoldPrefix(b[i+1:], "eallocate") {
				return true
			}
		}
	}
	return false
}
