package loadgen

import "testing"

func TestATargetMayBeNamed(t *testing.T) {
	for in, want := range map[string][2]string{
		"direct=postgres://u:pw@h:5432/db":   {"direct", "postgres://u:pw@h:5432/db"},
		"pg_bouncer=postgresql://u@h/db?x=1": {"pg_bouncer", "postgresql://u@h/db?x=1"},
		"postgres://u@h/db?sslmode=disable":  {"", "postgres://u@h/db?sslmode=disable"},
		"host=h port=5432 dbname=db":         {"", "host=h port=5432 dbname=db"},
		"a b=postgres://h/db":                {"", "a b=postgres://h/db"},
	} {
		name, url := SplitTarget(in)
		if name != want[0] || url != want[1] {
			t.Errorf("SplitTarget(%q) = %q, %q; want %q, %q", in, name, url, want[0], want[1])
		}
	}
}
