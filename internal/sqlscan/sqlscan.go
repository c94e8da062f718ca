// Package sqlscan reads just enough of SQL text, as PostgreSQL's lexer
// would, for what pgvalve must know before it forwards a query: where each
// statement of a query string starts and its first words, and the highest
// parameter ($n) a statement uses. It skips quoted strings, quoted
// identifiers' contents, dollar-quoted strings, comments (nested block
// comments too) and parenthesised parts; it parses nothing else.
package sqlscan

import (
	"strconv"
	"strings"
)

// Word is one keyword or identifier.
type Word struct {
	Text     string // as written, or unescaped when quoted
	Quoted   bool
	Pos, End int // where it is in the text, quotes included
}

// Is reports whether w is the unquoted keyword kw, in any case.
func (w Word) Is(kw string) bool { return !w.Quoted && strings.EqualFold(w.Text, kw) }

// Name is w as PostgreSQL reads an identifier: quoted as written, else with
// ASCII letters folded to lower case.
func (w Word) Name() string {
	if w.Quoted {
		return w.Text
	}
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, w.Text)
}

// Statement is the start of one statement: up to the first few words that
// come before anything else (a literal, an operator, a parenthesis), and
// where the statement is in the text, its semicolon left out.
type Statement struct {
	Words      []Word
	Start, End int
	// rest: it holds more than its leading words, white space and
	// comments, or a part PostgreSQL's lexer refuses (see Words).
	rest bool
}

// Statements splits q into its statements at semicolons outside quotes,
// comments and parentheses, and returns up to max leading words of each
// (empty statements are left out).
func Statements(q string, max int) []Statement {
	var out []Statement
	cur := Statement{Start: -1}
	word := func(w Word) {
		if cur.rest || len(cur.Words) == max {
			cur.rest = true // words stop at anything else, and at max
			return
		}
		cur.Words = append(cur.Words, w)
	}
	for i := 0; i < len(q); i++ {
		c := q[i]
		if cur.Start < 0 && c != ';' && !isSpace(c) {
			cur.Start = i
		}
		switch {
		case c == ';':
			if len(cur.Words) > 0 {
				cur.End = i
				out = append(out, cur)
			}
			cur = Statement{Start: -1}
		case isSpace(c):
		case strings.HasPrefix(q[i:], "--"), strings.HasPrefix(q[i:], "/*"):
			i = skipComment(q, i)
			if i == len(q) && c == '/' {
				cur.rest = true // unterminated
			}
		case c == '"':
			end := skipQuoted(q, i, '"')
			word(Word{Text: strings.ReplaceAll(q[i+1:min(end, len(q))], `""`, `"`), Quoted: true, Pos: i, End: min(end+1, len(q))})
			if end == len(q) || end == i+1 {
				cur.rest = true // unterminated, or empty: PostgreSQL refuses both
			}
			i = end
		case identStart(c):
			j := i + 1
			for j < len(q) && (identStart(q[j]) || isDigit(q[j]) || q[j] == '$') {
				j++
			}
			word(Word{Text: q[i:j], Pos: i, End: j})
			i = j - 1
		case c == '\'':
			cur.rest = true
			i = skipQuoted(q, i, '\'')
		case c == '$':
			cur.rest = true
			i = skipDollarQuoted(q, i)
		case c == '(':
			cur.rest = true
			i = skipParens(q, i)
		default:
			cur.rest = true
		}
	}
	if len(cur.Words) > 0 {
		cur.End = len(q)
		out = append(out, cur)
	}
	return out
}

// Words returns the words of q when q is one statement made of nothing
// but at most max words, white space, comments and semicolons, as a
// command like DEALLOCATE ALL is; ok is false for anything else, and for
// what PostgreSQL's lexer refuses (an unterminated comment or quoted
// identifier, an empty quoted identifier).
func Words(q string, max int) (words []Word, ok bool) {
	sts := Statements(q, max)
	if len(sts) != 1 || sts[0].rest {
		return nil, false
	}
	return sts[0].Words, true
}

// HighestParam returns the highest parameter ($n) q refers to outside
// quotes, dollar quotes and comments.
func HighestParam(q string) int {
	highest := 0
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == '\'' || c == '"':
			i = skipQuoted(q, i, c)
		case strings.HasPrefix(q[i:], "--"), strings.HasPrefix(q[i:], "/*"):
			i = skipComment(q, i)
		case c == '$':
			j := i + 1
			for j < len(q) && isDigit(q[j]) {
				j++
			}
			if j == i+1 {
				i = skipDollarQuoted(q, i)
				continue
			}
			if n, err := strconv.Atoi(q[i+1 : j]); err == nil && (i == 0 || !identStart(q[i-1]) && !isDigit(q[i-1])) {
				highest = max(highest, n)
			}
			i = j - 1
		}
	}
	return highest
}

// FirstWordIs reports whether q's first word is one of kws (lower case).
func FirstWordIs(q string, kws ...string) bool {
	st := Statements(q, 1)
	if len(st) == 0 {
		return false
	}
	for _, kw := range kws {
		if st[0].Words[0].Is(kw) {
			return true
		}
	}
	return false
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func identStart(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c >= 0x80
}

// skipComment returns the index of the last byte of the comment at i: a
// line comment, or a block comment, which nests.
func skipComment(q string, i int) int {
	if q[i] == '-' {
		if n := strings.IndexByte(q[i:], '\n'); n >= 0 {
			return i + n
		}
		return len(q)
	}
	depth := 0
	for j := i; j+1 < len(q); j++ {
		switch {
		case q[j] == '/' && q[j+1] == '*':
			depth++
			j++
		case q[j] == '*' && q[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j
			}
		}
	}
	return len(q)
}

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

// skipParens returns the index of the parenthesis that closes the one at
// i, skipping what is quoted or commented inside.
func skipParens(q string, i int) int {
	depth := 0
	for j := i; j < len(q); j++ {
		switch c := q[j]; {
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return j
			}
		case c == '\'' || c == '"':
			j = skipQuoted(q, j, c)
		case c == '$':
			j = skipDollarQuoted(q, j)
		case strings.HasPrefix(q[j:], "--"), strings.HasPrefix(q[j:], "/*"):
			j = skipComment(q, j)
		}
	}
	return len(q)
}
