package app_test

import (
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
)

// migrationLock is the key prisma migrate locks.
const migrationLock = 72707369

// tryLock is pg_try_advisory_lock(migrationLock) run by c.
func tryLock(t *testing.T, c *pgx.Conn) bool { return lockCall(t, c, "pg_try_advisory_lock") }

// unlock is pg_advisory_unlock(migrationLock) run by c.
func unlock(t *testing.T, c *pgx.Conn) bool { return lockCall(t, c, "pg_advisory_unlock") }

// lockCall runs fn(migrationLock) on c and returns its answer. The key is
// written as the other calls write it: pgvalve pairs locks and unlocks by
// their argument text.
func lockCall(t *testing.T, c *pgx.Conn, fn string) (got bool) {
	t.Helper()
	if err := c.QueryRow(testutil.Context(t), "select "+fn+"(72707369)").Scan(&got); err != nil {
		t.Fatal(err)
	}
	return got
}

// prisma migrate's lock is exclusive while held, through pgvalve in
// transaction pooling with 20 other clients on a pool of 2: another
// client's pg_try_advisory_lock fails on whatever server it runs; after
// pg_advisory_unlock (true) no backend holds it and the other client gets it.
func TestAMigrationLockIsExclusiveUntilUnlocked(t *testing.T) {
	_, url := startValve(t, everyClientMayPin(2))
	su := direct(t)
	stop := busy(t, url, 20)
	defer stop()
	m, other := connectTx(t, url), connectTx(t, url)
	testutil.MustExec(t, m, "select pg_advisory_lock(72707369)")
	holder := lockHolder(t, su, migrationLock)
	for i := range 10 {
		testutil.MustExec(t, m, "begin; create table if not exists migrated (id int); insert into migrated values (1); commit")
		if tryLock(t, other) {
			t.Fatalf("try %d: another client got the lock that %d holds", i, holder)
		}
	}
	testutil.MustExec(t, m, "drop table migrated")
	if !unlock(t, m) {
		t.Fatal("pg_advisory_unlock returned false: the unlock ran on a server without the lock")
	}
	if pid := lockHolder(t, su, migrationLock); pid != 0 {
		t.Fatalf("backend %d holds the lock after the unlock", pid)
	}
	next := connectTx(t, url) // other's failed tries pin it: see the skipped test below
	if !tryLock(t, next) {
		t.Fatal("another client cannot get the lock after the unlock")
	}
	if !unlock(t, next) {
		t.Fatal("the other client's unlock returned false")
	}
}

// A client that dies holding the lock (its socket closed without
// Terminate) releases it: its server is cleaned, no backend holds the lock
// any more, and another client gets it.
func TestAMigrationLockDiesWithItsClient(t *testing.T) {
	s, url := startValve(t, everyClientMayPin(2))
	su := direct(t)
	stop := busy(t, url, 20)
	defer stop()
	d, other := connectTx(t, url), connectTx(t, url)
	testutil.MustExec(t, d, "select pg_advisory_lock(72707369)")
	testutil.MustExec(t, d, "begin; select 1; commit")
	var held bool
	if err := other.QueryRow(testutil.Context(t), "select pg_try_advisory_xact_lock(72707369)").Scan(&held); err != nil || held {
		t.Fatalf("another client's try: %v, %v; want false", held, err)
	}
	if err := d.PgConn().Conn().Close(); err != nil { // no Terminate
		t.Fatal(err)
	}
	testutil.EventuallyWithin(t, 10*time.Second, "the dead client's lock to go", func() bool {
		return lockHolder(t, su, migrationLock) == 0
	})
	if !tryLock(t, other) {
		t.Fatal("another client cannot get the lock its dead holder left")
	}
	if !unlock(t, other) {
		t.Fatal("the other client's unlock returned false")
	}
	stop()
	s.WaitIdle(t, 10*time.Second)
	if pid := lockHolder(t, su, migrationLock); pid != 0 {
		t.Fatalf("backend %d holds the lock after both clients released it", pid)
	}
}

// A pg_try_advisory_lock counts as taken whether or not it got the lock
// (pgvalve reads statements, not their results: the safe side), so a
// client whose try failed stays pinned after its later unlock, as the
// README says, until pg_advisory_unlock_all() ends the pin.
func TestAFailedTryLockKeepsItsClientPinnedUntilUnlockAll(t *testing.T) {
	s, url := startValve(t, everyClientMayPin(2))
	holder, c := connectTx(t, url), connectTx(t, url)
	testutil.MustExec(t, holder, "select pg_advisory_lock(72707369)")
	if tryLock(t, c) {
		t.Fatal("got a lock that is held")
	}
	if !unlock(t, holder) || !tryLock(t, c) || !unlock(t, c) {
		t.Fatal("lock, unlock, try and unlock did not all succeed")
	}
	if pin := clientPin(t, s); pin != "advisory_lock" {
		t.Fatalf("after a failed try, a try and an unlock the pin is %q, want advisory_lock", pin)
	}
	testutil.MustExec(t, c, "select pg_advisory_unlock_all()")
	if pin := clientPin(t, s); pin != "" {
		t.Fatalf("pg_advisory_unlock_all() left the pin %q", pin)
	}
}

// everyClientMayPin is transaction pooling where max_pinned_servers
// refuses no pin: these tests are about the pins, not their bound.
func everyClientMayPin(poolSize int) config.Config {
	cfg := txnConfig(poolSize)
	cfg.MaxPinnedServers = poolSize
	return cfg
}
