// Command pooledlab runs the relay lab's least goroutine pooler (the
// Pooled design of internal/relaylab) on its own, so that the bench script
// can run it as a candidate beside PgBouncer and pgvalve: it is the floor
// pgvalve's own cost is measured against. It is for measurement only: it
// authenticates nobody, answers every login as a server would, and follows
// no session state (run it with CONNECT_AUTHS=trust). For example:
//
//	go build -o /tmp/pooledlab ./internal/relaylab/cmd/pooledlab
//	CANDIDATE_CMD='exec /tmp/pooledlab -listen 127.0.0.1:$CANDIDATE_PORT -pool-size $POOL_SIZE \
//	    -url postgres://$PGUSER_UPSTREAM@$PGHOST_UPSTREAM:$PGPORT_UPSTREAM/$PGDATABASE_UPSTREAM' \
//	    CONNECT_AUTHS=trust ../shared/bench/pooler-bench.sh
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:6433", "address to accept clients on")
	url := flag.String("url", "", "PostgreSQL URL the servers log in with")
	size := flag.Int("pool-size", 20, "servers, all logged in at the start")
	flag.Parse()
	if err := run(*listen, *url, *size); err != nil {
		fmt.Fprintln(os.Stderr, "pooledlab:", err)
		os.Exit(1)
	}
}
