package stmt

import (
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// queryWords returns the words of a simple Query body (NUL-terminated, at
// most limit bytes) that is one statement of at most three words, such as
// DEALLOCATE PREPARE name; ok is false for anything else (see
// sqlscan.Words).
func queryWords(body []byte, limit int) ([]sqlscan.Word, bool) {
	if len(body) == 0 || len(body) > limit || body[len(body)-1] != 0 {
		return nil, false
	}
	return sqlscan.Words(string(body[:len(body)-1]), 3)
}

// resetCommand recognises a one-statement DEALLOCATE [PREPARE] ALL or
// DISCARD ALL.
func resetCommand(body []byte) string {
	if !namesDeallocateOrDiscard(body) {
		return ""
	}
	words, ok := queryWords(body, 64)
	if !ok || !words[len(words)-1].Is("all") {
		return ""
	}
	switch {
	case len(words) == 2 && words[0].Is("discard"):
		return "DISCARD ALL"
	case words[0].Is("deallocate") && (len(words) == 2 || words[1].Is("prepare")):
		return "DEALLOCATE ALL"
	}
	return ""
}

// deallocateName recognises a one-statement "DEALLOCATE [PREPARE] name".
func deallocateName(body []byte) (string, bool) {
	if !namesDeallocateOrDiscard(body) {
		return "", false
	}
	words, ok := queryWords(body, 256)
	if !ok {
		return "", false
	}
	verb, at, ok := preparedName(words)
	if !ok || verb != "deallocate" || at != len(words)-1 {
		return "", false
	}
	return words[at].Name(), true
}

// namesDeallocateOrDiscard is a cheap first look for resetCommand and
// deallocateName: both need the word DEALLOCATE or DISCARD, which nearly
// no query contains, and only short texts are parsed at all.
func namesDeallocateOrDiscard(body []byte) bool {
	if len(body) > 256 {
		return false
	}
	for i, c := range body {
		if c|0x20 != 'd' {
			continue
		}
		if hasFoldPrefix(body[i+1:], "eallocate") || hasFoldPrefix(body[i+1:], "iscard") {
			return true
		}
	}
	return false
}

// hasFoldPrefix reports whether b starts with the lower-case ASCII word w,
// ignoring ASCII case.
func hasFoldPrefix(b []byte, w string) bool {
	if len(b) < len(w) {
		return false
	}
	for i := range len(w) {
		if b[i]|0x20 != w[i] {
			return false
		}
	}
	return true
}

// action is what executing a statement does to prepared statements.
type action struct {
	reset   bool   // DEALLOCATE ALL or DISCARD ALL: every one goes
	dealloc string // DEALLOCATE name: that one goes
	// prep: PREPARE prep AS …, run by the server as PREPARE of
	// prepSt's server name: the client's name prep becomes prepSt.
	prep   string
	prepSt *Statement
}

// actionOf reads a statement's text for a DEALLOCATE or DISCARD ALL.
func actionOf(query string) action {
	if doesDeallocateAll([]byte(query)) {
		return action{reset: true}
	}
	if len(query) >= 256 || !namesDeallocateOrDiscard([]byte(query)) {
		return action{}
	}
	body := []byte(query + "\x00")
	if resetCommand(body) != "" {
		return action{reset: true}
	}
	if name, ok := deallocateName(body); ok {
		return action{dealloc: name}
	}
	return action{}
}

// doesDeallocateAll reports whether a statement is a DO block whose code
// says DEALLOCATE ALL: run, it drops every prepared statement, as the
// client's own DEALLOCATE ALL would. (DISCARD ALL cannot run in one; what
// functions run pgvalve cannot see: see Tracker.lostStatement.)
func doesDeallocateAll(q []byte) bool {
	if !containsFold(q, "deallocate") || !sqlscan.FirstWordIs(string(q), "do") {
		return false
	}
	words := strings.Fields(strings.ToLower(string(q)))
	for i := 0; i+1 < len(words); i++ {
		if strings.Trim(words[i], "'\"$;(") != "deallocate" {
			continue
		}
		next := strings.Trim(words[i+1], "'\"$;)")
		if next == "prepare" && i+2 < len(words) {
			next = strings.Trim(words[i+2], "'\"$;)")
		}
		if next == "all" {
			return true
		}
	}
	return false
}

// The words whose presence in a simple query makes it worth a closer look
// (see sqlWordsIn).
const (
	wordDeallocate = 1 << iota
	wordDiscard
	wordPrepare
	wordExecute
)

// sqlWordsIn is which of DEALLOCATE, DISCARD, PREPARE and EXECUTE b
// contains anywhere, ignoring ASCII case, in one pass: what
// namesDeallocateOrDiscard (short of its length limit), doesDeallocateAll
// and namesPrepared first look for, each in a pass of its own, so that a
// query with none of them costs one.
func sqlWordsIn(b []byte) (words int) {
	for i, c := range b {
		switch c | 0x20 {
		case 'd':
			if hasFoldPrefix(b[i+1:], "eallocate") {
				words |= wordDeallocate
			} else if hasFoldPrefix(b[i+1:], "iscard") {
				words |= wordDiscard
			}
		case 'p':
			if hasFoldPrefix(b[i+1:], "repare") {
				words |= wordPrepare
			}
		case 'e':
			if hasFoldPrefix(b[i+1:], "xecute") {
				words |= wordExecute
			}
		}
	}
	return words
}

// containsFold reports whether b contains the lower-case ASCII word w,
// ignoring ASCII case.
func containsFold(b []byte, w string) bool {
	for i, c := range b {
		if c|0x20 == w[0] && hasFoldPrefix(b[i+1:], w[1:]) {
			return true
		}
	}
	return false
}
