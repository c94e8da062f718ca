package cancel

import (
	"context"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type countTarget struct{ n atomic.Int32 }

func (c *countTarget) CancelCurrent(context.Context) error { c.n.Add(1); return nil }

func TestCancelReachesOnlyTheTargetRegisteredUnderTheKey(t *testing.T) {
	r := NewRegistry(0)
	a, b := &countTarget{}, &countTarget{}
	ka, unregA := r.Register(a)
	kb, unregB := r.Register(b)
	defer unregB()
	if ka.PID == kb.PID && string(ka.Secret) == string(kb.Secret) {
		t.Fatal("two clients got the same key")
	}
	cases := []struct {
		name   string
		pid    uint32
		secret []byte
		known  bool
		wantA  int32
	}{
		{"right key", ka.PID, ka.Secret, true, 1},
		{"right pid, wrong secret", ka.PID, []byte{0, 0, 0, 0}, false, 1},
		{"other client's secret", ka.PID, kb.Secret, false, 1},
		{"short secret", ka.PID, ka.Secret[:2], false, 1},
	}
	for _, tc := range cases {
		out, err := r.Cancel(context.Background(), tc.pid, tc.secret)
		known := out == Delivered
		if err != nil || known != tc.known {
			t.Fatalf("%s: known=%v err=%v, want known=%v", tc.name, known, err, tc.known)
		}
		if got := a.n.Load(); got != tc.wantA {
			t.Fatalf("%s: target a cancelled %d times, want %d", tc.name, got, tc.wantA)
		}
	}
	if b.n.Load() != 0 {
		t.Fatal("target b was cancelled by requests for a")
	}
	unregA()
	if out, _ := r.Cancel(context.Background(), ka.PID, ka.Secret); out != Unknown {
		t.Fatal("a key must stop working once its client is gone")
	}
	if r.Len() != 1 {
		t.Fatalf("Len = %d, want 1", r.Len())
	}
}
