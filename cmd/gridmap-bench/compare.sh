#!/usr/bin/env bash
# Compares gridmap with Olric v0.5.7 on the anchor workloads: put 256 B, get 256 B and put 1 MiB, each
# at concurrency 32 on 3 members with 1 synchronous backup. Olric runs through the harness in
# bench/olric (a module of its own, so Olric never enters gridmap's go.mod; built to $TMPDIR),
# gridmap through gridmap-bench. The two systems alternate run by run (and which goes first flips
# every round), for ROUNDS rounds, because runs on one box drift by up to ~15%.
#
#   cmd/gridmap-bench/compare.sh                  # 3 rounds of 10 s runs: about 3 min of measuring
#   ROUNDS=5 DUR=20s MODE=procs OUT=/tmp/cmp.jsonl cmd/gridmap-bench/compare.sh
#   cmd/gridmap-bench/compare.sh -s /tmp/cmp.jsonl  # only print the summary of an earlier file
#
# Every run's JSON line is appended to $OUT; the summary (medians per system and workload, and the
# gridmap/olric ratios) is printed at the end. A failed run is reported and skipped.
set -euo pipefail

summarize() {
  awk '
    function field(line, name,   s) {
      if (!match(line, "\"" name "\":(\"[^\"]*\"|[^,}]*)")) return ""
      s = substr(line, RSTART + length(name) + 3, RLENGTH - length(name) - 3)
      gsub(/"/, "", s)
      return s
    }
    function median(key,   n, i, j, v, a) {
      n = cnt[key]
      for (i = 1; i <= n; i++) a[i] = val[key, i]
      for (i = 2; i <= n; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
      if (n == 0) return 0
      if (n % 2) return a[(n + 1) / 2]
      return (a[n / 2] + a[n / 2 + 1]) / 2
    }
    /^\{/ {
      sys = field($0, "system"); w = field($0, "op") " " field($0, "value_size") " B"
      if (!(w in seen)) { seen[w] = 1; order[++nw] = w }
      g = w SUBSEP sys; runs[g]++; errs[g] += field($0, "errors")
      split("ops_per_sec mb_per_sec p50_us p99_us", m, " ")
      for (k = 1; k <= 4; k++) { key = g SUBSEP m[k]; val[key, ++cnt[key]] = field($0, m[k]) + 0 }
      st = field($0, "cpu_steal_pct")
      if (st != "") { key = g SUBSEP "steal"; val[key, ++cnt[key]] = st + 0 }
    }
    END {
      printf "%-16s %-8s %4s %12s %9s %12s %12s %7s %7s\n", "workload", "system", "runs", "ops/s", "MB/s", "p50 us", "p99 us", "errors", "steal%"
      for (i = 1; i <= nw; i++) {
        w = order[i]
        for (s = 1; s <= 2; s++) {
          sys = (s == 1) ? "olric" : "gridmap"; g = w SUBSEP sys
          if (!(g in runs)) continue
          med[sys, "ops"] = median(g SUBSEP "ops_per_sec"); med[sys, "p50"] = median(g SUBSEP "p50_us"); med[sys, "p99"] = median(g SUBSEP "p99_us")
          steal = (cnt[g SUBSEP "steal"] > 0) ? sprintf("%.1f", median(g SUBSEP "steal")) : "-"
          printf "%-16s %-8s %4d %12.1f %9.1f %12.1f %12.1f %7d %7s\n", w, sys, runs[g], med[sys, "ops"],
            median(g SUBSEP "mb_per_sec"), med[sys, "p50"], med[sys, "p99"], errs[g], steal
        }
        if ((w SUBSEP "olric") in runs && (w SUBSEP "gridmap") in runs && med["olric", "ops"] > 0 && med["gridmap", "p50"] > 0 && med["gridmap", "p99"] > 0)
          printf "%-16s %-8s %4s %11.2fx %9s %11.2fx %11.2fx   (gridmap/olric throughput, olric/gridmap latency)\n", w, "ratio", "",
            med["gridmap", "ops"] / med["olric", "ops"], "", med["olric", "p50"] / med["gridmap", "p50"], med["olric", "p99"] / med["gridmap", "p99"]
      }
      printf "medians over the runs; errors are summed; steal%%: CPU time stolen by the hypervisor during gridmap runs\n"
    }' "$1"
}

if [ "${1:-}" = "-s" ]; then
  summarize "${2:?usage: compare.sh -s results.jsonl}"
  exit 0
fi

root=$(cd "$(dirname "$0")/../.." && pwd)
olric_dir=${OLRIC_DIR:-$root/bench/olric}
tmp=${TMPDIR:-/tmp}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10s}
MODE=${MODE:-inproc} # gridmap members: inproc (like the Olric harness, one process) or procs
OUT=${OUT:-$tmp/gridmap-vs-olric.jsonl}

echo "building $tmp/olricbench and $tmp/gridmap-bench" >&2
(cd "$olric_dir" && go build -o "$tmp/olricbench" .)
(cd "$root" && go build -o "$tmp/gridmap-bench" ./cmd/gridmap-bench)

: > "$OUT"
workloads=("-op put -value-size 256" "-op get -value-size 256" "-op put -value-size 1048576")
common=(-concurrency 32 -members 3 -backups 1 -duration "$DUR")
for ((r = 1; r <= ROUNDS; r++)); do
  if ((r % 2)); then order=(olric gridmap); else order=(gridmap olric); fi
  for w in "${workloads[@]}"; do
    for sys in "${order[@]}"; do
      echo "round $r/$ROUNDS: $sys $w" >&2
      # shellcheck disable=SC2086 # $w is a list of flags
      case $sys in
        olric) cmd=("$tmp/olricbench" $w "${common[@]}") ;;
        gridmap) cmd=("$tmp/gridmap-bench" $w "${common[@]}" -mode "$MODE" -json) ;;
      esac
      if line=$("${cmd[@]}" </dev/null); then
        echo "$line" | tee -a "$OUT"
      else
        echo "FAILED: ${cmd[*]}" >&2
      fi
    done
  done
done
echo "results: $OUT" >&2
summarize "$OUT"
