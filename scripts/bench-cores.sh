#!/usr/bin/env bash
# bench-cores.sh: one pgvalve process beside PgBouncer run the way it uses
# several cores, N processes sharing one port with so_reuseport, each with
# its share of the pool (pool_size / N). In one run on one machine it
# measures, for each setup:
#   * pgbench throughput (-S and tpcb, simple protocol), latency, and the
#     poolers' CPU per transaction (all N PgBouncer processes summed);
#   * the most server connections each setup had open (both are capped at
#     POOL_SIZE in all: pgvalve by one pool, PgBouncer by N shares; each
#     PgBouncer process is asked on its own unix socket and they are summed);
#   * what one admin console reports while CLIENTS_VIEW clients are
#     connected: SHOW POOLS' cl_active + cl_waiting, asked VIEWS times (each
#     console connection lands on one process, which knows its own only);
#   * cancel requests: CANCELS times, psql runs pg_sleep(5) and is
#     interrupted after 0.5 s, which sends a CancelRequest on a new
#     connection; counted as cancelled when psql reports 57014.
#
#   N=2 T=10 REPEAT=2 CLIENTS="50 200" scripts/bench-cores.sh
#
# Knobs: N (PgBouncer processes, default nproc), T (seconds a pgbench
# run, 10), REPEAT (rounds, 2; setups interleaved), CLIENTS ("50 200"),
# POOL_SIZE (20, a multiple of N), SCALE (10), CANCELS (20), VIEWS (20),
# CLIENTS_VIEW (40), OUT (results.csv, view.txt and the logs; default a
# temp dir). Everything it starts lives in one temp dir and is stopped by
# PID or pg_ctl on exit. Runs as root (PostgreSQL and PgBouncer then run
# as postgres) or as a normal user.
set -euo pipefail

N=${N:-$(nproc)} T=${T:-10} REPEAT=${REPEAT:-2} CLIENTS=${CLIENTS:-"50 200"} POOL_SIZE=${POOL_SIZE:-20}
SCALE=${SCALE:-10} CANCELS=${CANCELS:-20} VIEWS=${VIEWS:-20} CLIENTS_VIEW=${CLIENTS_VIEW:-40}
ROOT=$(mktemp -d /tmp/pgvalve-cores-XXXXXX)
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "bench-cores: $*" >&2; exit 1; }
(( POOL_SIZE % N == 0 )) || die "POOL_SIZE ($POOL_SIZE) must be a multiple of N ($N)"
command -v pgbouncer >/dev/null || die "no pgbouncer in PATH"
BINDIR=$(pg_config --bindir 2>/dev/null || true)
[[ -x $BINDIR/initdb ]] || BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $BINDIR/initdb ]] || die "no PostgreSQL server binaries (initdb) found"
AS=()
if (( EUID == 0 )); then
  id postgres >/dev/null 2>&1 || die "running as root needs a postgres user to run PostgreSQL and PgBouncer as"
  AS=(setpriv --reuid="$(id -u postgres)" --regid="$(id -g postgres)" --init-groups --)
  chown postgres: "$ROOT"
fi
pg() { "${AS[@]}" "$BINDIR/$1" "${@:2}"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

VALVE_PID= BOUNCER_PIDS=()
cleanup() {
  [[ -n $VALVE_PID ]] && kill "$VALVE_PID" 2>/dev/null && wait "$VALVE_PID" 2>/dev/null
  for p in "${BOUNCER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [[ -f $ROOT/pg/postmaster.pid ]] && pg pg_ctl stop -D "$ROOT/pg" -m fast -w -s >/dev/null 2>&1
  [[ $OUT == "$ROOT"/* ]] || rm -rf "$ROOT"
}
trap cleanup EXIT

PGP=$(free_port) PV=$(free_port) PB=$(free_port)
echo "PostgreSQL (scale $SCALE), pgvalve, and $N PgBouncer processes on one port, in $ROOT" >&2
pg initdb -D "$ROOT/pg" -A trust -U postgres --no-sync >/dev/null
cat >>"$ROOT/pg/postgresql.conf" <<EOF
max_connections = 200
synchronous_commit = off
shared_buffers = 128MB
autovacuum = off
EOF
pg pg_ctl start -D "$ROOT/pg" -w -s -l "$ROOT/postgres.log" -o "-p $PGP -k $ROOT -c listen_addresses=127.0.0.1" >/dev/null
"${AS[@]}" "$BINDIR/pgbench" -i -s "$SCALE" -q -h "$ROOT" -p "$PGP" -U postgres postgres >/dev/null 2>&1

go build -o "$ROOT/pgvalve" "$HERE/cmd/pgvalve"
cat >"$ROOT/pgvalve.toml" <<EOF
listen = "127.0.0.1:$PV"
unix_socket_dir = ""
upstream = "postgres://postgres@127.0.0.1:$PGP/postgres"
pool_mode = "transaction"
pool_size = $POOL_SIZE
max_client_conn = 2000
query_wait_timeout = 0
admin_users = ["postgres"]
log_level = "warn"
EOF
"$ROOT/pgvalve" run --config "$ROOT/pgvalve.toml" >"$OUT/pgvalve.log" 2>&1 &
VALVE_PID=$!

echo '"postgres" ""' >"$ROOT/userlist.txt"
for i in $(seq "$N"); do
  mkdir -p "$ROOT/pb$i"
  cat >"$ROOT/pb$i/pgbouncer.ini" <<EOF
[databases]
postgres = host=127.0.0.1 port=$PGP dbname=postgres user=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PB
so_reuseport = 1
unix_socket_dir = $ROOT/pb$i
pidfile = $ROOT/pb$i/pgbouncer.pid
pool_mode = transaction
default_pool_size = $(( POOL_SIZE / N ))
max_client_conn = 2000
query_wait_timeout = 0
auth_type = trust
auth_file = $ROOT/userlist.txt
admin_users = postgres
stats_users = postgres
log_connections = 0
log_disconnections = 0
EOF
  [[ -n ${AS[*]} ]] && chown -R postgres: "$ROOT/pb$i" "$ROOT/userlist.txt"
  "${AS[@]}" pgbouncer "$ROOT/pb$i/pgbouncer.ini" >"$OUT/pgbouncer$i.log" 2>&1 &
  BOUNCER_PIDS+=($!)
done
ready() { for _ in $(seq 100); do psql -X -qAt -h 127.0.0.1 -p "$1" -U postgres -c 'select 1' postgres >/dev/null 2>&1 && return; sleep 0.1; done; die "nothing answers on $1"; }
ready "$PV"; ready "$PB"
for port in "$PV" "$PB"; do  # warm the pools and the caches before measuring
  pgbench -n -S -T 2 -c 8 -j 2 -h 127.0.0.1 -p "$port" -U postgres postgres >/dev/null 2>&1 || die "warm-up through $port failed"
done

HZ=$(getconf CLK_TCK)
ticks() {  # utime+stime of the given processes, summed
  local t=0 p
  for p in "$@"; do t=$(( t + $(awk '{ i = index($0, ") "); split(substr($0, i + 2), f, " "); print f[12] + f[13] }' "/proc/$p/stat") )); done
  echo "$t"
}
pools() {  # SHOW POOLS' server columns summed, of one pooler's console (host port db)
  psql -X -qAt -F'|' -h "$1" -p "$2" -U postgres -c 'SHOW POOLS' "$3" 2>/dev/null |
    awk -F'|' '$1 == "postgres" { s += $7 + $10 + $11 + $12 + $13 } END { print s + 0 }'
}
servers() {  # the servers a setup has open now: pgvalve's one console, or every PgBouncer's own
  local s=0 i
  if [[ $1 == pgvalve ]]; then pools 127.0.0.1 "$PV" pgvalve; return; fi
  for i in $(seq "$N"); do s=$(( s + $(pools "$ROOT/pb$i" "$PB" pgbouncer) )); done
  echo "$s"
}

echo "round,workload,clients,setup,tps,lat_ms,pooler_us_txn,peak_server_conns" >"$OUT/results.csv"
run() {  # round workload clients setup port pids...
  local round=$1 wl=$2 c=$3 setup=$4 port=$5; shift 5
  local c0 c1 out tps lat peak=0 n args=()
  [[ $wl == select ]] && args=(-S)
  c0=$(ticks "$@")
  pgbench -n "${args[@]}" -M simple -T "$T" -c "$c" -j 2 -h 127.0.0.1 -p "$port" -U postgres postgres >"$ROOT/pgbench.out" 2>&1 &
  local bench=$!
  while kill -0 "$bench" 2>/dev/null; do n=$(servers "$setup"); (( n > peak )) && peak=$n; sleep 0.5; done
  wait "$bench" || die "pgbench through $setup: $(cat "$ROOT/pgbench.out")"
  c1=$(ticks "$@")
  out=$(cat "$ROOT/pgbench.out")
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  awk -v r="$round" -v w="$wl" -v c="$c" -v s="$setup" -v tps="$tps" -v lat="$lat" -v T="$T" -v hz="$HZ" \
    -v cpu="$((c1 - c0))" -v peak="$peak" 'BEGIN {
      printf "%s,%s,%s,%s,%.0f,%.3f,%.1f,%d\n", r, w, c, s, tps, lat, cpu * 1e6 / hz / (tps * T), peak }' >>"$OUT/results.csv"
  tail -1 "$OUT/results.csv" >&2
}

for round in $(seq "$REPEAT"); do
  for wl in select tpcb; do
    for c in $CLIENTS; do
      if (( round % 2 )); then
        run "$round" "$wl" "$c" pgvalve "$PV" "$VALVE_PID"
        run "$round" "$wl" "$c" "pgbouncer-x$N" "$PB" "${BOUNCER_PIDS[@]}"
      else
        run "$round" "$wl" "$c" "pgbouncer-x$N" "$PB" "${BOUNCER_PIDS[@]}"
        run "$round" "$wl" "$c" pgvalve "$PV" "$VALVE_PID"
      fi
    done
  done
done

# One view: CLIENTS_VIEW idle-between-transactions clients (pgbench -S at
# a trickle) stay connected while the console is asked VIEWS times.
view() {  # setup port console-db
  pgbench -n -S -R 20 -T 30 -c "$CLIENTS_VIEW" -j 2 -h 127.0.0.1 -p "$2" -U postgres postgres >/dev/null 2>&1 &
  local bench=$! seen=()
  sleep 3
  for _ in $(seq "$VIEWS"); do
    seen+=("$(psql -X -qAt -F'|' -h 127.0.0.1 -p "$2" -U postgres -c 'SHOW POOLS' "$3" 2>/dev/null |
      awk -F'|' '$1 == "postgres" { print $3 + $4 }')")
  done
  kill "$bench" 2>/dev/null; wait "$bench" 2>/dev/null || true
  printf '%s: %d clients connected; SHOW POOLS said cl_active+cl_waiting = %s\n' "$1" "$CLIENTS_VIEW" \
    "$(printf '%s\n' "${seen[@]}" | sort -n | uniq -c | awk '{ printf "%s%s (x%s)", (NR > 1 ? ", " : ""), $2, $1 }')" | tee -a "$OUT/view.txt" >&2
}
view pgvalve "$PV" pgvalve
view "pgbouncer-x$N" "$PB" pgbouncer

# Cancels: psql's SIGINT sends a CancelRequest on a new connection, which
# the kernel may hand to any process listening on the port.
cancels() {  # setup port
  local ok=0 i out
  for i in $(seq "$CANCELS"); do
    out=$(timeout -s INT 0.5 psql -X -h 127.0.0.1 -p "$2" -U postgres -c 'select pg_sleep(5)' postgres 2>&1 || true)
    grep -q 'canceling statement due to user request' <<<"$out" && ok=$((ok + 1))
  done
  printf '%s: %d of %d cancel requests reached their query\n' "$1" "$ok" "$CANCELS" | tee -a "$OUT/view.txt" >&2
}
cancels pgvalve "$PV"
cancels "pgbouncer-x$N" "$PB"
echo "results: $OUT/results.csv and $OUT/view.txt" >&2
