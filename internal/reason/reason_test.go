package reason

import (
	"regexp"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestEveryReasonHasAUniqueSnakeCaseNameAKindAndLogText(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	seen := map[string]Reason{}
	for _, r := range All() {
		name := r.String()
		if !snake.MatchString(name) {
			t.Errorf("reason %d: name %q is not snake_case", r, name)
		}
		if prev, dup := seen[name]; dup {
			t.Errorf("reasons %d and %d share the name %q", prev, r, name)
		}
		seen[name] = r
		if r.Kind() == 0 || r.Log() == "" {
			t.Errorf("%s: kind %d, log %q; want both set", name, r.Kind(), r.Log())
		}
		if r.Kind() == Server && (r.Code() != "" || r.Message() != "") {
			t.Errorf("%s: a server reason has a client code or message", name)
		}
	}
}

func TestMessagesAreFilledInOnlyWhenGivenArguments(t *testing.T) {
	if got := NoSuchDatabase.Message("app"); got != "no such database: app" {
		t.Errorf("NoSuchDatabase.Message = %q", got)
	}
	if got := TooManyClients.Message(); got != "no more connections allowed (max_client_conn)" {
		t.Errorf("TooManyClients.Message = %q", got)
	}
	if got := ServerLost.Describe("EOF"); got != "server lost: EOF" {
		t.Errorf("Describe = %q", got)
	}
}
