package notify_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/backend"
	"github.com/pgvalve/pgvalve/internal/notify"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// gapSink collects payloads like sink, and on the lost-connection NOTICE
// sends a notification at once, before it lets the hub go on: one sent
// after the NOTICE arrived.
type gapSink struct {
	sink
	sender *pgx.Conn
	gaps   chan struct{}
}

func (s *gapSink) Deliver(msg []byte) {
	if msg[0] == 'N' {
		_, err := s.sender.Exec(context.Background(), "select pg_notify('jobs', 'right after the notice')")
		if err != nil {
			panic(err)
		}
		s.gaps <- struct{}{}
		return
	}
	s.sink.Deliver(msg)
}

// The NOTICE about a lost listening connection comes only once the new
// connection listens again: a notification sent as soon as the client
// has it is delivered.
func TestTheGapNoticeComesOnceTheNewConnectionListens(t *testing.T) {
	const app = "pgvalve notify gap test"
	h := notify.New(notify.Config{Name: "test", Backoff: 10 * time.Millisecond, Dial: func(ctx context.Context) (*backend.Conn, error) {
		return backend.Dial(ctx, backend.Config{Host: cluster.Host, Port: cluster.Port, User: cluster.User, Password: cluster.Password,
			Database: cluster.Database, Params: map[string]string{"sslmode": "disable", "application_name": app}})
	}})
	t.Cleanup(h.Close)
	ctx := testutil.Context(t)
	su := testutil.Connect(t, cluster.SuperuserURL(cluster.Database))
	s := &gapSink{sender: testutil.Connect(t, cluster.SuperuserURL(cluster.Database)), gaps: make(chan struct{}, 1)}
	if err := h.Subscribe(ctx, s, "jobs"); err != nil {
		t.Fatal(err)
	}
	testutil.MustExec(t, su, "select pg_terminate_backend(pid) from pg_stat_activity where application_name = '"+app+"'")
	select {
	case <-s.gaps:
	case <-time.After(10 * time.Second):
		t.Fatal("no NOTICE after the listening connection was killed")
	}
	testutil.EventuallyWithin(t, 10*time.Second, "the notification sent right after the NOTICE", func() bool {
		return s.has("jobs:right after the notice")
	})
}
