#!/usr/bin/env bash
# The anchor of the queue figures (docs/performance.md): a single Redis 7 server's LPUSH and BRPOP
# on this machine, with the same traffic shape as gridmap-bench -op offer|take -concurrency 32
# (every item pushed is popped, the list stays short): 16 clients LPUSH while 16 clients BRPOP
# the same list, at once, with 256 B and 4 KiB values. Redis comes from Debian
# (apt-get install -y redis-server); it runs without persistence on $PORT for the measurement
# and is stopped afterwards. Prints one CSV line per command and size:
#   size,command,requests_per_sec,p50_ms,p99_ms
#
#   cmd/gridmap-bench/redis_queue_anchor.sh            # N=200000 ops per command and size
#   N=500000 PORT=6400 cmd/gridmap-bench/redis_queue_anchor.sh
set -euo pipefail
N=${N:-200000}
PORT=${PORT:-6399}
dir=$(mktemp -d)
redis-server --port "$PORT" --save "" --appendonly no --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$PORT" --version >/dev/null
echo "size,command,requests_per_sec,p50_ms,p99_ms"
for size in 256 4096; do
  redis-cli -p "$PORT" del mylist >/dev/null
  # redis-benchmark --csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
  # "p95_latency_ms","p99_latency_ms","max_latency_ms"
  # (-t lpush pushes -d bytes onto "mylist"; a custom command would push its own argument.)
  redis-benchmark -p "$PORT" -c 16 -n "$N" -d "$size" --csv -t lpush >"$dir/push.csv" &
  push=$!
  redis-benchmark -p "$PORT" -c 16 -n "$N" --csv brpop mylist 0 >"$dir/pop.csv"
  wait "$push"
  [ "$(redis-cli -p "$PORT" llen mylist)" = 0 ] || { echo "list not drained" >&2; exit 1; }
  for f in push pop; do
    tail -n 1 "$dir/$f.csv" | tr -d '"' | awk -F, -v s="$size" -v c="$f" '{ printf "%s,%s,%.0f,%s,%s\n", s, (c == "push" ? "LPUSH" : "BRPOP"), $2, $5, $7 }'
  done
done
