package app

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/pgvalve/pgvalve/internal/backend"
)

// lagQuery asks a standby whether it has replayed all it received, and how
// long ago the last transaction it replayed committed on the primary. A
// standby that has caught up lags by nothing, however long the primary has
// been idle; one behind lags by the age of what it replayed last.
const lagQuery = "SELECT pg_catalog.pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_catalog.pg_last_wal_replay_lsn(), " +
	"EXTRACT(EPOCH FROM pg_catalog.now() - pg_catalog.pg_last_xact_replay_timestamp())"

// replayLag is how far a standby's replay is behind its primary: 0 when it
// has replayed all it received, -1 when it is behind but has replayed no
// transaction yet (so its lag cannot be told).
func replayLag(ctx context.Context, c *backend.Conn) (time.Duration, error) {
	row, err := c.QueryRow(ctx, lagQuery)
	if err != nil {
		return -1, err
	}
	if len(row) != 2 || row[0] == nil {
		return -1, fmt.Errorf("replica lag: unexpected answer %v", row)
	}
	if *row[0] == "t" {
		return 0, nil
	}
	if row[1] == nil {
		return -1, nil
	}
	secs, err := strconv.ParseFloat(*row[1], 64)
	if err != nil {
		return -1, fmt.Errorf("replica lag: %w", err)
	}
	return max(time.Duration(secs*float64(time.Second)), 0), nil
}

// LagError says a standby's replay is further behind than max_replica_lag:
// it leaves its pool's choice until it catches up.
type LagError struct {
	Lag, Max time.Duration
}

func (e *LagError) Error() string {
	return fmt.Sprintf("replay lags %s behind the primary, more than max_replica_lag (%s)",
		e.Lag.Round(time.Millisecond), e.Max)
}
