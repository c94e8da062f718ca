package config

import (
	"reflect"
	"testing"
)

func TestKeyLinesFindsEachKeysFirstLine(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		want map[string]int
	}{
		{"plain keys and comments", "# c\na = 1\n\nb = \"x\" # trailing\n",
			map[string]int{"a": 2, "b": 4}},
		{"table headers give the full path", "x = 1\n[databases.main]\nupstream = \"u\"\n[databases.other]\npool_size = 2\n",
			map[string]int{"x": 1, "databases": 2, "databases.main": 2, "databases.main.upstream": 3,
				"databases.other": 4, "databases.other.pool_size": 5}},
		{"multi-line values hide look-alike lines", "a = \"\"\"\nb = 1\n[t]\n\"\"\"\nc = [\n  1,\n  # d = 2\n]\nd = '''\n'''\ne = 5\n",
			map[string]int{"a": 1, "c": 5, "d": 9, "e": 11}},
		{"quoted and dotted keys", "[\"we ird\" . 'x']\n\"k.1\" = 1\np.q = 2\n",
			map[string]int{`"we ird"`: 1, `"we ird".x`: 1, `"we ird".x."k.1"`: 2, `"we ird".x.p`: 3, `"we ird".x.p.q`: 3}},
		{"inline tables", "t = { a = 1, b = { c = 2 } }\n",
			map[string]int{"t": 1, "t.a": 1, "t.b": 1, "t.b.c": 1}},
		{"arrays of tables keep the first line", "[[s]]\nk = 1\n[[s]]\nk = 2\nj = 3\n",
			map[string]int{"s": 1, "s.k": 2, "s.j": 5}},
		{"CRLF and BOM", "\ufeffa = 1\r\n\r\n[t]\r\nb = 2",
			map[string]int{"a": 1, "t": 3, "t.b": 4}},
		{"empty document", "", map[string]int{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keyLines(tt.doc); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("keyLines =\n %v\nwant\n %v", got, tt.want)
			}
		})
	}
}
