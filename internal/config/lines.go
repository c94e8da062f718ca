package config

import (
	"strings"

	"github.com/BurntSushi/toml"
)

// keyLines maps every key path of a TOML document (as toml.Key.String()
// renders it) to the 1-based line where the key first appears. A key that
// only exists implicitly, such as "databases" in [databases.main], gets the
// line of its first descendant.
//
// BurntSushi/toml records key positions but does not export them, so the
// document is re-parsed one statement at a time with the parser itself: a
// statement ends at the first line where the text since the previous
// statement parses on its own. Letting the real parser decide keeps multi-line
// strings and arrays, quoted keys, escapes and comments right without a second
// lexer. Key/value statements are parsed under a copy of the current table
// header so that their keys come out with the full path.
//
// It must only be given text that parses as a whole; if a statement ever
// fails to close, scanning stops and later keys are simply absent.
func keyLines(doc string) map[string]int {
	doc = strings.TrimPrefix(doc, "\ufeff") // the parser skips a BOM too

	// starts[i] is the byte offset of line i; starts[len] is the end.
	starts := []int{0}
	for i := 0; i < len(doc); i++ {
		if doc[i] == '\n' && i+1 < len(doc) {
			starts = append(starts, i+1)
		}
	}
	starts = append(starts, len(doc))
	nlines := len(starts) - 1

	out := make(map[string]int)
	header := "" // raw text of the table header in force, newline-terminated
	for first := 0; first < nlines; {
		isHeader := strings.HasPrefix(strings.TrimLeft(doc[starts[first]:starts[first+1]], " \t"), "[")
		last := first
		var md toml.MetaData
		for ; last < nlines; last++ {
			stmt := doc[starts[first]:starts[last+1]]
			text := stmt
			if !isHeader {
				text = header + stmt
			}
			var v map[string]any
			var err error
			if md, err = toml.Decode(text, &v); err == nil {
				if isHeader {
					header = stmt
					if !strings.HasSuffix(header, "\n") {
						header += "\n"
					}
				}
				break
			}
		}
		if last == nlines {
			return out // not a statement boundary anywhere below: give up
		}
		for _, k := range md.Keys() {
			for n := 1; n <= len(k); n++ {
				if s := k[:n].String(); out[s] == 0 {
					out[s] = first + 1
				}
			}
		}
		first = last + 1
	}
	return out
}
