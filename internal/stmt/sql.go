package stmt

import (
	"strconv"
	"strings"
)

// sqlWord is one word of a simple query: a keyword or identifier, with
// whether it was double-quoted (then text is unescaped).
type sqlWord struct {
	text   string
	quoted bool
}

// is reports whether w is the unquoted keyword kw, in any case.
func (w sqlWord) is(kw string) bool { return !w.quoted && strings.EqualFold(w.text, kw) }

// name is w as PostgreSQL reads an identifier: quoted as written, else
// with ASCII letters folded to lower case (only ASCII: UTF-8 letters keep
// their case).
func (w sqlWord) name() string {
	if w.quoted {
		return w.text
	}
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, w.text)
}

// sqlWords splits a simple Query body (NUL-terminated, at most limit
// bytes) holding one statement into its words, as PostgreSQL's lexer
// would: white space and comments separate them, trailing semicolons end
// it. Anything else (literals, operators, a second statement) is refused.
func sqlWords(body []byte, limit int) ([]sqlWord, bool) {
	if len(body) == 0 || len(body) > limit || body[len(body)-1] != 0 {
		return nil, false
	}
	s := string(body[:len(body)-1])
	var words []sqlWord
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
			words = append(words, sqlWord{text: b.String(), quoted: true})
		case identStart(c):
			j := i + 1
			for j < len(s) && (identStart(s[j]) || '0' <= s[j] && s[j] <= '9' || s[j] == '$') {
				j++
			}
			words = append(words, sqlWord{text: s[i:j]})
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
func dropPrepare(words []sqlWord) []sqlWord {
	if len(words) == 3 && words[0].is("deallocate") && words[1].is("prepare") {
		return []sqlWord{words[0], words[2]}
	}
	return words
}

// resetCommand recognises a one-statement DEALLOCATE ALL or DISCARD ALL.
func resetCommand(body []byte) string {
	if !namesDeallocateOrDiscard(body) {
		return ""
	}
	words, ok := sqlWords(body, 64)
	if words = dropPrepare(words); !ok || len(words) != 2 || !words[1].is("all") {
		return ""
	}
	switch {
	case words[0].is("deallocate"):
		return "DEALLOCATE ALL"
	case words[0].is("discard"):
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
	if words = dropPrepare(words); !ok || len(words) != 2 || !words[0].is("deallocate") || words[1].is("all") {
		return "", false
	}
	return words[1].name(), true
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

// endsTransaction reports whether a statement may end a transaction block
// (COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION): PostgreSQL parses
// and runs those in a failed transaction. It looks at the first word only,
// so pgvalve errs towards asking the server.
func endsTransaction(query string) bool {
	i := 0
	for i < len(query) {
		switch {
		case strings.HasPrefix(query[i:], "--"):
			n := strings.IndexByte(query[i:], '\n')
			if n < 0 {
				return false
			}
			i += n
		case strings.HasPrefix(query[i:], "/*"):
			n := strings.Index(query[i:], "*/")
			if n < 0 {
				return false
			}
			i += n + 2
		case strings.IndexByte(" \t\n\r\f\v", query[i]) >= 0:
			i++
		default:
			j := i
			for j < len(query) && identStart(query[j]) {
				j++
			}
			switch strings.ToLower(query[i:j]) {
			case "commit", "end", "rollback", "abort", "prepare":
				return true
			}
			return false
		}
	}
	return false
}

// highestParam returns the highest parameter ($n) a query refers to, read
// as PostgreSQL's lexer would: not inside quotes, dollar quotes or
// comments.
func highestParam(q string) int {
	highest := 0
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'' || c == '"':
			i = skipQuoted(q, i, c)
		case strings.HasPrefix(q[i:], "--"):
			if n := strings.IndexByte(q[i:], '\n'); n >= 0 {
				i += n
			} else {
				i = len(q)
			}
		case strings.HasPrefix(q[i:], "/*"):
			if n := strings.Index(q[i:], "*/"); n >= 0 {
				i += n + 1
			} else {
				i = len(q)
			}
		case c == '$':
			j := i + 1
			for j < len(q) && '0' <= q[j] && q[j] <= '9' {
				j++
			}
			if j > i+1 {
				n, err := strconv.Atoi(q[i+1 : j])
				if err == nil && (i == 0 || !identStart(q[i-1]) && !isDigit(q[i-1])) {
					highest = max(highest, n)
				}
				i = j - 1
				continue
			}
			i = skipDollarQuoted(q, i)
		}
	}
	return highest
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipQuoted returns the index of the quote that closes the one at i
// (doubled quotes stay inside).
func skipQuoted(q string, i int, quote byte) int {
	for j := i + 1; j < len(q); j++ {
		if q[j] == quote {
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j
		}
	}
	return len(q)
}

// skipDollarQuoted returns the index of the last byte of a dollar-quoted
// string opening at i ($tag$...$tag$), or i when none opens there.
func skipDollarQuoted(q string, i int) int {
	if i > 0 && (identStart(q[i-1]) || isDigit(q[i-1])) {
		return i // part of an identifier
	}
	j := i + 1
	for j < len(q) && (identStart(q[j]) || isDigit(q[j])) {
		j++
	}
	if j >= len(q) || q[j] != '$' {
		return i
	}
	tag := q[i : j+1]
	if n := strings.Index(q[j+1:], tag); n >= 0 {
		return j + 1 + n + len(tag) - 1
	}
	return len(q)
}
