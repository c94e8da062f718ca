#!/usr/bin/env bash
# bench-replicas.sh: read-only pgbench (-S) through pgvalve over one streaming
# replica and over two, beside pgbench straight to one replica, in one run
# on one machine. For each run it records TPS, latency, the CPU of pgvalve,
# of each replica's PostgreSQL and of pgbench (each per transaction), and
# how pgvalve spread its leases over the hosts (SHOW HOSTS' chosen).
#
#   T=10 REPEAT=3 CLIENTS="10 50" scripts/bench-replicas.sh
#
# Knobs: T (seconds a run, 10), REPEAT (rounds, 3; targets interleaved in
# each), CLIENTS ("10 50"), SCALE (pgbench scale, 10), POOL_SIZE (20),
# OUT (directory for results.csv and the logs, default a temp dir).
# Everything it starts lives in one temp dir and is stopped by PID or
# pg_ctl on exit. Runs as root (PostgreSQL then runs as postgres) or as a
# normal user.
set -euo pipefail

T=${T:-10} REPEAT=${REPEAT:-3} CLIENTS=${CLIENTS:-"10 50"} SCALE=${SCALE:-10} POOL_SIZE=${POOL_SIZE:-20}
ROOT=$(mktemp -d /tmp/pgvalve-replicas-XXXXXX)
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
HERE=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "bench-replicas: $*" >&2; exit 1; }
BINDIR=$(pg_config --bindir 2>/dev/null || true)
[[ -x $BINDIR/initdb ]] || BINDIR=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $BINDIR/initdb ]] || die "no PostgreSQL server binaries (initdb) found"
AS=()
if (( EUID == 0 )); then
  id postgres >/dev/null 2>&1 || die "running as root needs a postgres user to run PostgreSQL as"
  AS=(setpriv --reuid="$(id -u postgres)" --regid="$(id -g postgres)" --init-groups --)
  chown postgres: "$ROOT"
fi
pg() { "${AS[@]}" "$BINDIR/$1" "${@:2}"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

VALVE_PID=
cleanup() {
  [[ -n $VALVE_PID ]] && kill "$VALVE_PID" 2>/dev/null && wait "$VALVE_PID" 2>/dev/null
  for d in "$ROOT"/r2 "$ROOT"/r1 "$ROOT"/primary; do
    [[ -f $d/postmaster.pid ]] && pg pg_ctl stop -D "$d" -m fast -w -s >/dev/null 2>&1
  done
  [[ $OUT == "$ROOT"/* ]] || rm -rf "$ROOT"
}
trap cleanup EXIT

start_cluster() {  # dir port
  pg pg_ctl start -D "$1" -w -s -l "$1.log" -o "-p $2 -k $ROOT -c listen_addresses=127.0.0.1" >/dev/null
}
echo "building a primary (scale $SCALE) and two streaming replicas in $ROOT" >&2
P0=$(free_port) P1=$(free_port) P2=$(free_port) PV=$(free_port)
pg initdb -D "$ROOT/primary" -A trust -U postgres --no-sync >/dev/null
cat >>"$ROOT/primary/postgresql.conf" <<EOF
max_connections = 200
synchronous_commit = off
shared_buffers = 128MB
EOF
start_cluster "$ROOT/primary" "$P0"
"${AS[@]}" "$BINDIR/pgbench" -i -s "$SCALE" -q -h "$ROOT" -p "$P0" -U postgres postgres >/dev/null 2>&1
for r in 1 2; do
  pg pg_basebackup -D "$ROOT/r$r" -R -X stream --checkpoint=fast -h "$ROOT" -p "$P0" -U postgres
  port=P$r
  start_cluster "$ROOT/r$r" "${!port}"
done

go build -o "$ROOT/pgvalve" "$HERE/cmd/pgvalve"
cat >"$ROOT/pgvalve.toml" <<EOF
listen = "127.0.0.1:$PV"
unix_socket_dir = ""
pool_mode = "transaction"
pool_size = $POOL_SIZE
max_client_conn = 2000
admin_users = ["postgres"]
log_level = "warn"
[databases.one]
upstream = "postgres://postgres@127.0.0.1:$P1/postgres?target_session_attrs=standby"
[databases.two]
upstream = "postgres://postgres@127.0.0.1:$P1,127.0.0.1:$P2/postgres?target_session_attrs=standby"
EOF
"$ROOT/pgvalve" run --config "$ROOT/pgvalve.toml" >"$OUT/pgvalve.log" 2>&1 &
VALVE_PID=$!
for _ in $(seq 100); do psql -X -qAt -h 127.0.0.1 -p "$PV" -U postgres -c 'select 1' one >/dev/null 2>&1 && break; sleep 0.1; done
# Warm up: the replicas' caches, and pgvalve's pools (a route's pool is
# made at its first login), before anything is measured.
for target in "$P1 postgres" "$P2 postgres" "$PV one" "$PV two"; do
  read -r port db <<<"$target"
  pgbench -n -S -T 2 -c 4 -j 2 -h 127.0.0.1 -p "$port" -U postgres "$db" >/dev/null 2>&1 || die "warm-up through $port/$db failed"
done

HZ=$(getconf CLK_TCK)
ticks() {  # utime+stime of a process, and of its reaped children with $2 = tree
  awk -v tree="${2:-}" '{ i = index($0, ") "); split(substr($0, i + 2), f, " ");
    t = f[12] + f[13]; if (tree != "") t += f[14] + f[15]; print t }' "/proc/$1/stat"
}
tree_ticks() {  # a postmaster and its children, live and reaped
  local root=$1
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$root" '
    { i = index($0, ") "); split(substr($0, i + 2), f, " ")
      if ($1 == root) t += f[12] + f[13] + f[14] + f[15]; else if (f[2] == root) t += f[12] + f[13] }
    END { print t + 0 }'
}
pm() { head -1 "$ROOT/$1/postmaster.pid"; }
chosen() {  # leases granted per host of route $1, space separated
  psql -X -qAt -F'|' -h 127.0.0.1 -p "$PV" -U postgres -c 'SHOW HOSTS' pgvalve |
    awk -F'|' -v db="$1" '$1 == db { printf "%s ", $11 }'
}

echo "round,clients,target,tps,lat_ms,pgvalve_us_txn,r1_us_txn,r2_us_txn,pgbench_us_txn,leases_per_host" >"$OUT/results.csv"
run() {  # round clients target port db
  local v0 r10 r20 r11 r21 v1 c0 c1 out tps lat
  v0=$(ticks "$VALVE_PID") r10=$(tree_ticks "$(pm r1)") r20=$(tree_ticks "$(pm r2)")
  c0=$([[ $3 == direct ]] || chosen "$5")
  local b0 b1
  b0=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
  out=$(pgbench -n -S -M extended -T "$T" -c "$2" -j 2 -h 127.0.0.1 -p "$4" -U postgres "$5" 2>&1) || die "pgbench: $out"
  b1=$(awk '{ print $14 + $15 + $16 + $17 }' /proc/$$/stat)
  v1=$(ticks "$VALVE_PID") r11=$(tree_ticks "$(pm r1)") r21=$(tree_ticks "$(pm r2)")
  c1=$([[ $3 == direct ]] || chosen "$5")
  tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' <<<"$out" | head -1)
  lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' <<<"$out")
  local spread  # leases granted on each host during the run, host by host
  spread=$(awk -v a="$c0" -v b="$c1" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) printf "%s%d", (i > 1 ? "/" : ""), y[i] - x[i] }')
  awk -v r="$1" -v c="$2" -v t="$3" -v tps="$tps" -v lat="$lat" -v T="$T" -v hz="$HZ" \
    -v v="$((v1 - v0))" -v a="$((r11 - r10))" -v b="$((r21 - r20))" -v g="$((b1 - b0))" \
    -v sp="${spread:-}" 'BEGIN {
      n = tps * T; us = 1e6 / hz / n
      printf "%s,%s,%s,%.0f,%.3f,%.1f,%.1f,%.1f,%.1f,%s\n", r, c, t, tps, lat, (t == "direct" ? 0 : v * us), a * us, b * us, g * us, sp }' \
    >>"$OUT/results.csv"
  tail -1 "$OUT/results.csv" >&2
}

for round in $(seq "$REPEAT"); do
  for c in $CLIENTS; do
    # Interleaved, a different order each round, so drift hits every target alike.
    order=("direct $P1 postgres" "one $PV one" "two $PV two")
    for i in $(seq 0 $(( (round - 1) % 3 ))); do order=("${order[@]:1}" "${order[0]}"); done
    for o in "${order[@]}"; do
      read -r target port db <<<"$o"
      run "$round" "$c" "$target" "$port" "$db"
    done
  done
done
echo "results: $OUT/results.csv" >&2
