package config

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
)

// IsINI reports whether data is a PgBouncer configuration: it has a
// [pgbouncer] section, which a pgvalve TOML file never has (TOML would
// also refuse most of an INI file's bare values).
func IsINI(data []byte) bool {
	return iniPgbouncerHeader.Match(data)
}

var iniPgbouncerHeader = regexp.MustCompile(`(?mi)^[ \t]*\[[ \t]*pgbouncer[ \t]*\][ \t]*(;.*|#.*)?\r?$`)

// iniEntry is one "key = value" line of a PgBouncer file, with where it
// stands (an %include makes that another file).
type iniEntry struct {
	section, key, value string
	file                string
	line                int
}

// maxIncludeDepth bounds %include nesting, as a loop of files would
// otherwise never end.
const maxIncludeDepth = 10

// readINI reads a PgBouncer file as PgBouncer does: sections in brackets,
// "key = value" lines, comments starting with ';' or '#', and
// "%include FILE" lines that read another file in place (a relative name
// is taken from the working directory, as PgBouncer takes it). An
// included file goes on in the section of the %include line.
func readINI(name string, data []byte, depth int, section string) ([]iniEntry, []problem) {
	var entries []iniEntry
	var probs []problem
	for i, raw := range bytes.Split(data, []byte("\n")) {
		line, at := strings.TrimSpace(strings.TrimSuffix(string(raw), "\r")), i+1
		fail := func(format string, args ...any) {
			probs = append(probs, problem{fromFile: true, file: name, line: at, msg: fmt.Sprintf(format, args...)})
		}
		switch {
		case line == "" || line[0] == ';' || line[0] == '#':
		case strings.HasPrefix(line, "%include"):
			path := strings.TrimSpace(strings.TrimPrefix(line, "%include"))
			if path == "" {
				fail("%%include needs a file name")
				continue
			}
			if depth >= maxIncludeDepth {
				fail("%%include nested more than %d deep (a loop?)", maxIncludeDepth)
				continue
			}
			inc, err := os.ReadFile(path)
			if err != nil {
				fail("%%include: %v", err)
				continue
			}
			more, incProbs := readINI(path, inc, depth+1, section)
			entries, probs = append(entries, more...), append(probs, incProbs...)
		case line[0] == '[':
			end := strings.IndexByte(line, ']')
			if end < 0 {
				fail("section header without ']'")
				continue
			}
			section = strings.ToLower(strings.TrimSpace(line[1:end]))
		default:
			key, value, ok := strings.Cut(line, "=")
			if !ok {
				fail("expected key = value, a [section] or %%include, got %q", line)
				continue
			}
			if section == "" {
				fail("%q comes before any [section]", strings.TrimSpace(key))
				continue
			}
			entries = append(entries, iniEntry{section: section, key: unquoteKey(strings.TrimSpace(key)),
				value: strings.TrimSpace(value), file: name, line: at})
		}
	}
	return entries, probs
}

// unquoteKey reads a database name written in double quotes, as PgBouncer
// allows for names with other characters ("my db" = ...).
func unquoteKey(k string) string {
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		return strings.ReplaceAll(k[1:len(k)-1], `""`, `"`)
	}
	if len(k) >= 2 && k[0] == '\'' && k[len(k)-1] == '\'' {
		return k[1 : len(k)-1]
	}
	return k
}

// connString splits a libpq key=value string, as PgBouncer writes a
// database's connection ("host=a port=5432 dbname='x y'"): values may be
// single-quoted, with \' and \\ escapes inside.
func connString(s string) (map[string]string, []string, error) {
	out := map[string]string{}
	var order []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, nil, fmt.Errorf("expected key=value in the connection string, got %q", s)
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t")
		var val strings.Builder
		if strings.HasPrefix(s, "'") {
			i, closed := 1, false
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					val.WriteByte(s[i])
					continue
				}
				if s[i] == '\'' {
					closed = true
					break
				}
				val.WriteByte(s[i])
			}
			if !closed {
				return nil, nil, fmt.Errorf("unterminated quote in the value of %s", key)
			}
			s = s[i+1:]
		} else {
			end := strings.IndexAny(s, " \t")
			if end < 0 {
				end = len(s)
			}
			val.WriteString(s[:end])
			s = s[end:]
		}
		if _, dup := out[key]; !dup {
			order = append(order, key)
		}
		out[key] = val.String()
	}
	return out, order, nil
}

// ParseINI reads a PgBouncer file (pgbouncer.ini) into a Config: its keys
// with PgBouncer's meaning and units, each [databases] line a route (the
// "*" line the global upstream), %include followed. The Config's Notices
// say which keys were ignored, each once with its line; a key whose value
// pgvalve cannot honour is an error, as are the usual validation
// problems, each with its file and line.
func ParseINI(name string, data []byte) (Config, error) {
	doc, notices, probs := convertINI(name, data)
	cfg, err := loadINI(name, doc, probs)
	cfg.notices = notices
	return cfg, err
}

// ConvertINI is the TOML a PgBouncer file becomes, with its notices as
// comments at the top, for `pgvalve convert`; a file ParseINI refuses is
// refused with the same errors.
func ConvertINI(name string, data []byte) (string, error) {
	doc, notices, probs := convertINI(name, data)
	if _, err := loadINI(name, doc, probs); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# pgvalve configuration converted from %s\n", name)
	for _, n := range notices {
		fmt.Fprintf(&b, "# %s\n", n)
	}
	b.WriteString("\n")
	b.WriteString(doc.text())
	return b.String(), nil
}

// loadINI decodes and validates the TOML a PgBouncer file became, after
// the problems its conversion found, with every line number taken back to
// the PgBouncer file's.
func loadINI(name string, doc tomlDoc, probs []problem) (Config, error) {
	if len(probs) > 0 {
		return Config{}, join(name, probs)
	}
	cfg, dprobs, ok := decode(name, []byte(doc.text()))
	for i := range dprobs {
		dprobs[i].line, dprobs[i].file = doc.at(dprobs[i].line)
	}
	if !ok {
		return Config{}, join(name, dprobs)
	}
	cfg.src.files = map[string]string{}
	for k, l := range cfg.src.lines {
		cfg.src.lines[k], cfg.src.files[k] = doc.at(l)
	}
	if err := join(name, append(dprobs, cfg.problems()...)); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

func convertINI(name string, data []byte) (tomlDoc, []string, []problem) {
	entries, probs := readINI(name, data, 0, "")
	var b bouncer
	doc := b.convert(entries)
	return doc, b.notices, append(probs, b.probs...)
}

// at is the PgBouncer file and line a TOML line came from.
func (d tomlDoc) at(line int) (int, string) {
	if line < 1 || line > len(d.origin) {
		return 0, ""
	}
	o := d.origin[line-1]
	return o.line, o.file
}
