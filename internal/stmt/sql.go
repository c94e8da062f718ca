package stmt

import (
	"strings"

	"github.com/pgvalve/pgvalve/internal/sqlscan"
)

// sqlWords splits a simple Query body (NUL-terminated, at most limit
// bytes) holding one statement into its words, as PostgreSQL's lexer
// would: white space and comments separate them, trailing semicolons end
// it. Anything else (literals, operators, a second statement) is refused.
func sqlWords(body []byte, limit int) ([]sqlscan.Word, bool) {
	if len(body) == 0 || len(body) > limit || body[len(body)-1] != 0 {
		return nil, false
	}
	s := string(body[:len(body)-1])
	var words []sqlscan.Word
	ended := false // a semicolon was seen: only more of them may follow
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(s[i:], "--"):
			n := strings.IndexByte(s[i:], '\n')
			if n < 0 {
				n = len(s) - i
			}
			i += n
		case strings.HasPrefix(s[i:], "/*"):
			depth := 0
			for i < len(s) && (depth > 0 || strings.HasPrefix(s[i:], "/*")) {
				switch {
				case strings.HasPrefix(s[i:], "/*"):
					depth, i = depth+1, i+2
				case strings.HasPrefix(s[i:], "*/"):
					depth, i = depth-1, i+2
				default:
					i++
				}
			}
			if depth > 0 {
				return nil, false
			}
		case c == ';':
			ended = true
			i++
		case ended:
			return nil, false
		case c == '"':
			var b strings.Builder
			for i++; ; i++ {
				if i >= len(s) {
					return nil, false
				}
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						i++
					} else {
						break
					}
				}
				b.WriteByte(s[i])
			}
			i++
			if b.Len() == 0 {
				return nil, false // a zero-length identifier is an error
			}
			words = append(words, sqlscan.Word{Text: b.String(), Quoted: true})
		case identStart(c):
			j := i + 1
			for j < len(s) && (identStart(s[j]) || '0' <= s[j] && s[j] <= '9' || s[j] == '$') {
				j++
			}
			words = append(words, sqlscan.Word{Text: s[i:j]})
			i = j
		default:
			return nil, false
		}
	}
	return words, true
}

func identStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

// dropPrepare removes the optional PREPARE of "DEALLOCATE PREPARE x".
func dropPrepare(words []sqlscan.Word) []sqlscan.Word {
	if len(words) == 3 && words[0].Is("deallocate") && words[1].Is("prepare") {
		return []sqlscan.Word{words[0], words[2]}
	}
	return words
}

// resetCommand recognises a one-statement DEALLOCATE ALL or DISCARD ALL.
func resetCommand(body []byte) string {
	if !namesDeallocateOrDiscard(body) {
		return ""
	}
	words, ok := sqlWords(body, 64)
	if words = dropPrepare(words); !ok || len(words) != 2 || !words[1].Is("all") {
		return ""
	}
	switch {
	case words[0].Is("deallocate"):
		return "DEALLOCATE ALL"
	case words[0].Is("discard"):
		return "DISCARD ALL"
	}
	return ""
}

// deallocateName recognises a one-statement "DEALLOCATE [PREPARE] name".
func deallocateName(body []byte) (string, bool) {
	if !namesDeallocateOrDiscard(body) {
		return "", false
	}
	words, ok := sqlWords(body, 256)
	if words = dropPrepare(words); !ok || len(words) != 2 || !words[0].Is("deallocate") || words[1].Is("all") {
		return "", false
	}
	return words[1].Name(), true
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
