package cancel

import (
	"context"
	"testing"
)

// A key another process issued (an online restart) reaches its client
// here once registered; a taken or malformed one is refused, and the key
// goes when its client does.
func TestAKeyIssuedElsewhereIsRegisteredAsIs(t *testing.T) {
	old, here := NewRegistry(0), NewRegistry(0)
	k, _ := old.Register(&countTarget{})
	c := &countTarget{}
	unregister, err := here.RegisterKey(k, c)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := here.RegisterKey(k, &countTarget{}); err == nil {
		t.Fatal("the same key registered twice")
	}
	for _, bad := range []Key{{PID: 0, Secret: []byte{1, 2, 3, 4}}, {PID: 7, Secret: []byte{1, 2}}} {
		if _, err := here.RegisterKey(bad, c); err == nil {
			t.Fatalf("registered %+v", bad)
		}
	}
	_, _ = here.Cancel(context.Background(), k.PID, k.Secret)
	if c.n.Load() != 1 {
		t.Fatalf("the cancel reached the client %d times", c.n.Load())
	}
	unregister()
	if here.Len() != 0 {
		t.Fatalf("%d keys left", here.Len())
	}
}

// While a takeover runs, a key this instance does not hold goes to the
// old process; a key it holds never does, and clearing it ends that.
func TestAnUnknownKeyGoesElsewhereOnlyWhileThatIsSet(t *testing.T) {
	r := NewRegistry(0)
	mine := &countTarget{}
	k, unregister := r.Register(mine)
	defer unregister()
	var passed []uint32
	r.SetElsewhere(func(_ context.Context, pid uint32, _ []byte) error { passed = append(passed, pid); return nil })
	if out, _ := r.Cancel(context.Background(), k.PID^1, k.Secret); out != Forwarded {
		t.Fatalf("an unknown key: %v; want forwarded", out)
	}
	if out, _ := r.Cancel(context.Background(), k.PID, k.Secret); out != Delivered || mine.n.Load() != 1 {
		t.Fatalf("a key held here: %v", out)
	}
	r.SetElsewhere(nil)
	if out, _ := r.Cancel(context.Background(), k.PID^1, k.Secret); out != Unknown || len(passed) != 1 {
		t.Fatalf("after clearing: %v, %d passed on", out, len(passed))
	}
}
