package stmt

import "github.com/jackc/pgx/v5/pgproto3"

// Message is one whole client message of a batch.
type Message struct {
	Type byte
	Body []byte
}

// Deferrable reports whether a batch only prepares new named statements
// (each name once, none the client has) and syncs: what libpq's PQprepare
// sends. A client holding no server gets such a batch answered by pgvalve,
// and the statements are prepared on a server when first used. Without
// that, a client that prepares synchronously (pgbench -M prepared) while
// other clients of its thread hold every server in a transaction would
// wait for a server forever. A name in use goes to a server, so that
// PostgreSQL's checks come in PostgreSQL's order.
func (t *Tracker) Deferrable(batch []Message) bool {
	if len(batch) < 2 || batch[len(batch)-1].Type != 'S' {
		return false
	}
	for i, m := range batch {
		switch m.Type {
		case 'S':
		case 'P':
			p, err := DecodeParse(m.Body)
			if err != nil || p.Name == "" {
				return false // malformed: PostgreSQL's error; unnamed: it lives on one server only
			}
			if _, used := t.reg.Get(p.Name); used || parsedIn(batch[:i], p.Name) || namesStatement(p.Query) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// parsedIn reports whether a batch parses name.
func parsedIn(batch []Message, name string) bool {
	for _, m := range batch {
		if m.Type == 'P' {
			if p, err := DecodeParse(m.Body); err == nil && p.Name == name {
				return true
			}
		}
	}
	return false
}

// Defer registers a deferrable batch's statements and returns the answers
// PostgreSQL would have sent: ParseComplete per Parse and ReadyForQuery per
// Sync. Errors in the query text surface when the statement is first used.
func (t *Tracker) Defer(batch []Message, dst []byte) ([]byte, error) {
	for _, m := range batch {
		if m.Type == 'S' {
			dst, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(dst)
			continue
		}
		p, err := DecodeParse(m.Body)
		if err != nil {
			return nil, err
		}
		t.reg.Add(p.Name, NewStatement(p)) // parsed on a server at first use
		dst = append(dst, '1', 0, 0, 0, 4)
	}
	return dst, nil
}
