package console

import (
	"errors"
	"strings"
)

// command is one parsed console query.
type command struct {
	// Verb is the command word, lower case ("show", "pause", …; "set" for
	// SET). Empty for an empty query.
	Verb string
	// Arg is the word after it ("" when none): a database, SHOW's subject,
	// SET's key, as written (a quoted word unquoted): database names are
	// case sensitive, as in PgBouncer.
	Arg string
	// Value is SET's value.
	Value string
}

var (
	errSyntax  = errors.New("invalid command")
	errBadArgs = errors.New("bad arguments")
)

// Word length limits, PgBouncer's (a command of 16 bytes, an argument of
// 64, a SET value of 256, each with its NUL).
const (
	maxVerb  = 15
	maxArg   = 63
	maxValue = 255
)

// parseCommand reads a console query as PgBouncer does:
//
//	WORD [WORD] [;]
//	SET WORD {= | TO} {WORD | 'string'} [;]
//
// where a WORD is [0-9a-z_]+ in any case or a "quoted" word ("" inside
// for a quote), and blanks are spaces, tabs and newlines. An empty query
// (blanks and at most one ';') has an empty Verb. It returns errSyntax
// for anything else and errBadArgs for a word too long.
func parseCommand(q string) (command, error) {
	l := lexer{s: q}
	l.blanks()
	if l.done() || l.semicolonEnd() {
		return command{}, nil
	}
	verb, quoted, ok := l.word()
	if !ok {
		return command{}, errSyntax
	}
	if len(verb) > maxVerb {
		return command{}, errBadArgs
	}
	verb = asciiLower(verb)
	if !quoted && verb == "set" {
		save := l.pos
		if l.blanks() {
			if c, ok, err := l.set(); ok {
				return c, err
			}
		}
		// Not the shape of a SET: read it as "set WORD" below, as
		// PgBouncer's first pattern would.
		l.pos = save
	}
	c := command{Verb: verb}
	if l.blanks() && !l.done() && !l.semicolonEnd() {
		arg, _, ok := l.word()
		if !ok {
			return command{}, errSyntax
		}
		if len(arg) > maxArg {
			return command{}, errBadArgs
		}
		c.Arg = arg
		l.blanks()
	}
	if !l.done() && !l.semicolonEnd() {
		return command{}, errSyntax
	}
	return c, nil
}

// lexer walks a query.
type lexer struct {
	s   string
	pos int
}

func (l *lexer) done() bool { return l.pos == len(l.s) }

// blanks skips blanks and reports whether there were any.
func (l *lexer) blanks() bool {
	start := l.pos
	for l.pos < len(l.s) && strings.IndexByte(" \t\n\r", l.s[l.pos]) >= 0 {
		l.pos++
	}
	return l.pos > start
}

// semicolonEnd reports whether the rest is one ';' and blanks, consuming
// it if so.
func (l *lexer) semicolonEnd() bool {
	if l.pos < len(l.s) && l.s[l.pos] == ';' {
		save := l.pos
		l.pos++
		l.blanks()
		if l.done() {
			return true
		}
		l.pos = save
	}
	return false
}

// word reads a bare word or a "quoted" one (unquoted).
func (l *lexer) word() (w string, quoted, ok bool) {
	if l.pos < len(l.s) && l.s[l.pos] == '"' {
		s, ok := l.quoted('"')
		return s, true, ok && s != ""
	}
	start := l.pos
	for l.pos < len(l.s) && isWordByte(l.s[l.pos]) {
		l.pos++
	}
	if l.pos == start {
		return "", false, false
	}
	return l.s[start:l.pos], false, true
}

// quoted reads a string in q quotes, doubled q standing for one.
func (l *lexer) quoted(q byte) (string, bool) {
	var b strings.Builder
	i := l.pos + 1
	for i < len(l.s) {
		c := l.s[i]
		if c == q {
			if i+1 < len(l.s) && l.s[i+1] == q {
				b.WriteByte(q)
				i += 2
				continue
			}
			l.pos = i + 1
			return b.String(), true
		}
		b.WriteByte(c)
		i++
	}
	return "", false
}

func isWordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

// set reads the rest of "SET key = value". ok is false when the query does
// not have that shape (and the lexer is where it was).
func (l *lexer) set() (c command, ok bool, err error) {
	save := l.pos
	fail := func() (command, bool, error) { l.pos = save; return command{}, false, nil }
	key, _, kok := l.word()
	if !kok {
		return fail()
	}
	l.blanks()
	switch {
	case l.pos < len(l.s) && l.s[l.pos] == '=':
		l.pos++
	case len(l.s)-l.pos >= 2 && strings.EqualFold(l.s[l.pos:l.pos+2], "to") &&
		(len(l.s)-l.pos == 2 || !isWordByte(l.s[l.pos+2])):
		l.pos += 2
	default:
		return fail()
	}
	l.blanks()
	var val string
	if l.pos < len(l.s) && l.s[l.pos] == '\'' {
		v, vok := l.quoted('\'')
		if !vok {
			return fail()
		}
		val = v
	} else {
		v, _, vok := l.word()
		if !vok {
			return fail()
		}
		val = v
	}
	l.blanks()
	if !l.done() && !l.semicolonEnd() {
		return fail()
	}
	if len(key) > maxArg || len(val) > maxValue {
		return command{}, true, errBadArgs
	}
	return command{Verb: "set", Arg: key, Value: val}, true, nil
}

// asciiLower lower-cases ASCII letters only, as PgBouncer's strcasecmp
// compares; other bytes stay as they are.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
