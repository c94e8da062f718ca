package notify_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/notify"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m, &cluster, pgtest.Options{})) }

// sink collects the payloads of the notifications it gets.
type sink struct {
	mu  sync.Mutex
	got []string
}

func (s *sink) Deliver(msg []byte) {
	var n pgproto3.NotificationResponse
	if msg[0] != 'A' || n.Decode(msg[5:]) != nil {
		return
	}
	s.mu.Lock()
	s.got = append(s.got, n.Channel+":"+n.Payload)
	s.mu.Unlock()
}

func (s *sink) has(want string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.got {
		if g == want {
			return true
		}
	}
	return false
}

func newHub(t *testing.T) *notify.Hub {
	h := notify.New(notify.Config{Name: "test", Dial: func(ctx context.Context) (*backend.Conn, error) {
		return backend.Dial(ctx, backend.Config{Host: cluster.Host, Port: cluster.Port, User: cluster.User,
			Password: cluster.Password, Database: cluster.Database, Params: map[string]string{"sslmode": "disable"}})
	}})
	t.Cleanup(h.Close)
	return h
}

// A channel is listened to while it has a subscriber: two clients share
// it, the first to leave changes nothing, and the connection closes when
// the last one leaves.
func TestAChannelIsListenedToWhileItHasASubscriber(t *testing.T) {
	h := newHub(t)
	ctx := testutil.Context(t)
	su := testutil.Connect(t, cluster.SuperuserURL(cluster.Database))
	a, b := &sink{}, &sink{}
	for _, s := range []*sink{a, b} {
		if err := h.Subscribe(ctx, s, "jobs"); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Subscribe(ctx, a, "other"); err != nil {
		t.Fatal(err)
	}
	if h.Channels() != 2 || h.Conns() != 1 {
		t.Fatalf("channels %d, connections %d; want 2 and 1", h.Channels(), h.Conns())
	}
	testutil.MustExec(t, su, "select pg_notify('jobs', 'one')")
	testutil.EventuallyWithin(t, 10*time.Second, "both to get one", func() bool {
		return a.has("jobs:one") && b.has("jobs:one")
	})
	h.Unsubscribe(a, "jobs")
	testutil.MustExec(t, su, "select pg_notify('jobs', 'two'); select pg_notify('other', 'three')")
	testutil.EventuallyWithin(t, 10*time.Second, "b to get two and a three", func() bool {
		return b.has("jobs:two") && a.has("other:three")
	})
	if a.has("jobs:two") {
		t.Error("a got a notification on a channel it left")
	}
	h.UnsubscribeAll(a)
	h.UnsubscribeAll(b)
	testutil.EventuallyWithin(t, 10*time.Second, "the listening connection to close", func() bool {
		return h.Conns() == 0
	})
	if h.Channels() != 0 {
		t.Errorf("%d channels left", h.Channels())
	}
}
