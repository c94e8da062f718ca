package wire

// DropCopySyncs applies a rule both the relay's safe point and the
// statement tracker must follow alike: PostgreSQL ignores a Sync that
// reaches it during COPY FROM STDIN. queue holds what awaits an answer
// after the request that just started a COPY (typ says each item's message
// type), oldest first, with an item of type 'c' where the client ended the
// COPY (CopyDone or CopyFail). The Syncs before that end get no answer and
// are dropped, in place; open says no end is queued yet, so the COPY goes
// on.
func DropCopySyncs[T any](queue []T, typ func(T) byte) (kept []T, open bool) {
	kept = queue[:0]
	ended := false
	for _, item := range queue {
		t := typ(item)
		if t == 'S' && !ended {
			continue
		}
		ended = ended || t == 'c'
		kept = append(kept, item)
	}
	return kept, !ended
}
