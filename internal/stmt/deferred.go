package stmt

import "github.com/jackc/pgx/v5/pgproto3"

// Message is one whole client message of a batch.
type Message struct {
	Type byte
	Body []byte
}

// Deferrable reports whether a batch only prepares named statements and
// syncs (what libpq's PQprepare sends). A client holding no server gets
// such a batch answered by pgvalve, and the statements are prepared on a
// server when first used. Without that, a client that prepares
// synchronously (pgbench -M prepared) while other clients of its thread
// hold every server in a transaction would wait for a server forever.
func Deferrable(batch []Message) bool {
	if len(batch) < 2 || batch[len(batch)-1].Type != 'S' {
		return false
	}
	for _, m := range batch {
		switch m.Type {
		case 'S':
		case 'P':
			if len(m.Body) == 0 || m.Body[0] == 0 {
				return false // unnamed: it lives on one server only
			}
			if _, err := DecodeParse(m.Body); err != nil {
				return false // PostgreSQL's own error is the answer
			}
		default:
			return false
		}
	}
	return true
}

// Defer registers a deferrable batch's statements and returns the answers
// PostgreSQL would have sent: ParseComplete per Parse and ReadyForQuery per
// Sync, or a 42P05 error for a name already in use (then the rest up to
// Sync is skipped, as PostgreSQL does). Errors in the query text surface
// when the statement is first used.
func (t *Tracker) Defer(batch []Message, dst []byte) ([]byte, error) {
	skipping := false
	for _, m := range batch {
		if m.Type == 'S' {
			skipping = false
			dst, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(dst)
			continue
		}
		if skipping {
			continue
		}
		p, err := DecodeParse(m.Body)
		if err != nil {
			return nil, err
		}
		if _, dup := t.reg.Get(p.Name); dup {
			e := pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "42P05",
				Message: `prepared statement "` + p.Name + `" already exists`}
			dst, _ = e.Encode(dst)
			skipping = true
			continue
		}
		t.reg.Add(p.Name, &Statement{Query: p.Query, ParamTypes: p.ParamTypes, Server: ServerName(p.Query, p.ParamTypes)})
		dst = append(dst, '1', 0, 0, 0, 4)
	}
	return dst, nil
}
