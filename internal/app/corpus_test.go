package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgvalve/pgvalve/internal/config"
	"github.com/pgvalve/pgvalve/internal/testutil"
	"github.com/pgvalve/pgvalve/internal/testutil/pgtest"
)

// TestRecordLoginCorpus records what real clients (pgx, psql) send while
// logging in to pgvalve with SCRAM and md5, cancelling, and negotiating
// a newer protocol, as the seed corpus of the front door's fuzz test
// (internal/frontend FuzzFrontDoor). It runs only when asked:
//
//	PGVALVE_RECORD_CORPUS=1 go test -run TestRecordLoginCorpus ./internal/app
func TestRecordLoginCorpus(t *testing.T) {
	if os.Getenv("PGVALVE_RECORD_CORPUS") == "" {
		t.Skip("set PGVALVE_RECORD_CORPUS=1 to record the front door's fuzz corpus")
	}
	dir, err := filepath.Abs("../frontend/testdata/fuzz/FuzzFrontDoor")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []config.AuthMode{config.AuthSCRAM, config.AuthMD5} {
		secret := storedVerifier(t)
		if mode == config.AuthMD5 {
			secret = md5Secret(cluster.User, cluster.Password)
		}
		s := authValve(t, mode, entry(cluster.User, secret))
		rec := newRecorder(t, s.Port())
		base := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s", rec.port, cluster.User, cluster.Password, pgtest.TestDatabase)
		for _, extra := range []string{"sslmode=disable", "sslmode=disable max_protocol_version=3.2 application_name=corpus"} {
			c, err := pgx.Connect(testutil.Context(t), base+" "+extra)
			if err != nil {
				t.Fatal(err)
			}
			testutil.MustExec(t, c, "select 1")
			_ = c.PgConn().CancelRequest(testutil.Context(t))
			_ = c.Close(context.Background())
		}
		bin, err := pgtest.FindBinDir()
		if err != nil {
			t.Fatal(err)
		}
		psql := exec.Command(filepath.Join(bin, "psql"), "-X", "-c", "select 1", base+" sslmode=disable")
		if out, err := psql.CombinedOutput(); err != nil {
			t.Fatalf("psql: %v\n%s", err, out)
		}
		rec.save(t, dir, string(mode))
	}
}

// recorder is a TCP proxy in front of pgvalve that keeps every byte each
// client sent.
type recorder struct {
	port int
	mu   sync.Mutex
	seen [][]byte
	wg   sync.WaitGroup
	ln   net.Listener
}

func newRecorder(t *testing.T, to int) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{port: ln.Addr().(*net.TCPAddr).Port, ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() { defer r.wg.Done(); r.relay(c, to) }()
		}
	}()
	t.Cleanup(func() { ln.Close(); r.wg.Wait() })
	return r
}

func (r *recorder) relay(c net.Conn, to int) {
	defer c.Close()
	up, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(to))
	if err != nil {
		return
	}
	defer up.Close()
	var sent bytes.Buffer
	done := make(chan struct{})
	go func() { _, _ = io.Copy(c, up); c.Close(); close(done) }()
	_, _ = io.Copy(io.MultiWriter(up, &sent), c)
	up.Close()
	<-done
	r.mu.Lock()
	r.seen = append(r.seen, sent.Bytes())
	r.mu.Unlock()
}

// save writes each recorded stream as a corpus file of the fuzz test.
func (r *recorder) save(t *testing.T, dir, prefix string) {
	r.ln.Close()
	r.wg.Wait()
	for i, b := range r.seen {
		name := filepath.Join(dir, fmt.Sprintf("%s-%d", prefix, i))
		if err := os.WriteFile(name, []byte("go test fuzz v1\n[]byte("+strconv.Quote(string(b))+")\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("recorded %d client streams for %s", len(r.seen), prefix)
}
