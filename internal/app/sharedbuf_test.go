package app_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/testutil"
)

// Clients waiting between transactions give their read buffer back to a
// pool that other clients read into (wire.Reader.Release). A slice of a
// client's batch held past that point would carry another client's bytes,
// or, under the race detector, where released buffers are poisoned,
// garbage. Here clients in every exec mode pause between queries so they
// release and take buffers all the time, send messages both small and
// larger than the buffer, and each checks every answer is its own.
func TestClientsSharingPooledReadBuffersEachGetTheirOwnAnswers(t *testing.T) {
	cfg := txnConfig(3)
	_, url := startValve(t, cfg)
	ctx := testutil.Context(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(allExecModes))
	for _, mode := range allExecModes {
		for id := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- ownAnswers(ctx, url, mode, fmt.Sprintf("%s-%d", mode, id))
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// ownAnswers sends queries carrying tag and checks each answer carries it
// back intact.
func ownAnswers(ctx context.Context, url string, mode pgx.QueryExecMode, tag string) error {
	c, err := dialMode(ctx, url, mode)
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	for i := range 12 {
		want := fmt.Sprintf("%s/%d/", tag, i)
		if i%4 == 3 {
			want += strings.Repeat("x", 40<<10) // larger than the read buffer
		}
		var got string
		if err := c.QueryRow(ctx, "SELECT $1::text", want).Scan(&got); err != nil {
			return fmt.Errorf("%s query %d: %w", tag, i, err)
		}
		if got != want {
			return fmt.Errorf("%s query %d: got %.60q…, want %.60q…", tag, i, got, want)
		}
		time.Sleep(time.Duration(i%3) * time.Millisecond) // idle: the buffer goes back
	}
	return nil
}
