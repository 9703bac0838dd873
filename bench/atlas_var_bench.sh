#!/usr/bin/env bash
# Benchmark ATLAS-VAR light-curve partition CSVs -> WebDataset shards with `etd shard`, against a
# pandas read_csv + groupby + numpy.save script on the same files, in the same run.
#
# Usage: bench/atlas_var_bench.sh [GB] [ETD_BINARY]
#   GB          size of the generated partition CSVs in GB (1e9 bytes; default 1)
#   ETD_BINARY  etd to benchmark (default: <repo>/target/release/etd; build it with
#               cargo build --release --locked -p etd)
# Environment:
#   BENCH_REPS      rounds (default 3; in each round etd runs, then pandas; medians reported)
#   BENCH_VENV      Python venv (default bench/work/venv, created from bench/requirements.txt if
#                   missing; the requirements are installed into it if pandas is missing)
#   BENCH_WAIT_MAX  seconds to wait for a busy machine before the timed runs (default 1800; the
#                   script waits while publish_bench.sh, a .ci/run or rustc is running)
#   ETD_SRC         git checkout the binary was built from, for the commit line
# Everything is written under bench/work/atlas-var/ (gitignored): data-<GB>gb/ (catalog + lc/,
# regenerated only if GB or the seed changes), etd/ (the etd workdir), pandas/ (the baseline's
# .npy files), recipe-<GB>gb.yaml and results/<UTC time>/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GB=${1:-1}
ETD=${2:-$REPO/target/release/etd}
REPS=${BENCH_REPS:-3}
WAIT_MAX=${BENCH_WAIT_MAX:-1800}
WORK=$HERE/work/atlas-var
VENV=${BENCH_VENV:-$HERE/work/venv}
SEED=20241125
CATALOG_NAME=hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

[[ $GB =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v g="$GB" 'BEGIN {exit !(g > 0)}' || die "GB must be a positive number, got '$GB'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer"
[[ $WAIT_MAX =~ ^[0-9]+$ ]] || die "BENCH_WAIT_MAX must be a number of seconds"
[[ -x $ETD ]] || die "etd not found: $ETD (cargo build --release --locked -p etd)"
ETD=$(cd "$(dirname "$ETD")" && pwd)/$(basename "$ETD")
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install -y time)"

bench_python pandas numpy astropy

mkdir -p "$WORK"
# Space: the CSVs, etd's shards (about half the CSV size at 1 GB), its grouping file, and
# pandas' ~100k small files; ask for 3x the CSV size.
NEED_KB=$(awk -v g="$GB" 'BEGIN {printf "%d", 3 * g * 1e9 / 1024}')
AVAIL_KB=$(df -Pk "$WORK" | awk 'NR==2 {print $4}')
DATA=$WORK/data-${GB}gb
if [[ ! -f $DATA/params.json ]] && ((AVAIL_KB < NEED_KB)); then
    die "not enough space under $WORK: $((AVAIL_KB / 1024)) MiB free, need about $((NEED_KB / 1024)) MiB (3 x ${GB} GB)"
fi

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
RES=$WORK/results/$RUN_ID
mkdir -p "$RES"
RUNS=$RES/runs.tsv # label rep wall_s peak_rss_kib user_s sys_s cached_pct
: >"$RUNS"

# ---------------------------------------------------------------------------------------------
# Data
log "generating ${GB} GB of partition CSVs (once; kept in $DATA)"
"$PY" "$HERE/make_atlas_var.py" "$DATA" "$GB" --seed "$SEED"
CATALOG=$DATA/$CATALOG_NAME
LC=$DATA/lc
CSV_BYTES=$(find "$LC" -maxdepth 1 -name 'atlas_lc_dr1_*.csv' -type f -printf '%s\n' | awk '{s += $1} END {print s}')
read -r OBJECTS ROWS < <("$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["objects"], d["rows"])' "$DATA/params.json")

RECIPE=$WORK/recipe-${GB}gb.yaml
cat >"$RECIPE" <<EOF
version: 1
name: atlas-var-bench
description: bench/atlas_var_bench.sh, every object of the synthetic catalog
source:
  atlas-var:
    catalog_url: file://$CATALOG
    lightcurves_url: file://$LC/
    memory: 256MB
shard:
  compression: none
  max_samples: 10000
EOF

# ---------------------------------------------------------------------------------------------
# Wait for a quiet machine (another benchmark, a CI run or a compiler would skew the timings)
busy() { pgrep -f publish_bench.sh >/dev/null || pgrep -f '\.ci/run' >/dev/null || pgrep -x rustc >/dev/null; }
BUSY_NOTE=""
if busy; then
    log "the machine is busy (publish_bench.sh, .ci/run or rustc running); waiting up to ${WAIT_MAX} s"
    waited=0
    while busy && ((waited < WAIT_MAX)); do sleep 20; waited=$((waited + 20)); done
    if busy; then
        BUSY_NOTE="WARNING:     still busy after waiting ${waited} s (publish_bench.sh/.ci/run/rustc); timings are skewed"
    else
        BUSY_NOTE="waited:      ${waited} s for other work (publish_bench.sh/.ci/run/rustc) to finish"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Machine and versions
bench_commit --short
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
FS=$(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}')
{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:     nproc=$(nproc), CPU: $CPU, RAM $MEM, kernel $(uname -r), $FS"
    echo "etd:         $("$ETD" --version 2>&1 | head -1), $ETD (built $(date -u -r "$ETD" '+%Y-%m-%d %H:%M UTC')), commit $COMMIT $COMMIT_SUBJ$DIRTY"
    echo "python:      $("$PY" -c 'import sys, pandas, numpy, astropy; print(sys.version.split()[0], "pandas", pandas.__version__, "numpy", numpy.__version__, "astropy", astropy.__version__)')"
    echo "input:       $OBJECTS objects, $ROWS rows, 12 partition CSVs, $CSV_BYTES bytes ($(awk -v b="$CSV_BYTES" 'BEGIN {printf "%.3f GB", b / 1e9}')); catalog $(stat -c %s "$CATALOG") bytes"
    [[ -n $BUSY_NOTE ]] && echo "$BUSY_NOTE"
    echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at start"
    awk -v n="$(nproc)" '$1 > n / 2 {print "WARNING:     the machine looks busy (1-min load " $1 " on " n " cores); timings will be noisy"}' /proc/loadavg
    echo "setup:       $REPS rounds, etd then pandas in each; page cache warm (inputs read before every run)"
} | tee "$RES/machine.txt"

# ---------------------------------------------------------------------------------------------
# Runs
warm_cache() { cat "$CATALOG" "$LC"/atlas_lc_dr1_*.csv >/dev/null; }
cache_pct() {
    command -v fincore >/dev/null || { echo NA; return; }
    local res
    res=$(fincore -nb -o RES "$LC"/atlas_lc_dr1_*.csv | awk '{s += $1} END {print s}')
    awk -v r="$res" -v b="$CSV_BYTES" 'BEGIN {p = 100 * r / b; if (p > 100) p = 100; printf "%.1f", p}'
}

# measure LABEL REP CMD...: one timed run (wall, peak RSS, CPU) with a warm page cache.
# The CSVs are read (untimed) before every run, not only once: this VM's kernel pages out page
# cache that stays idle for about a minute (DAMON), which would leave later runs partly cold.
measure() {
    local label=$1 rep=$2 cached
    shift 2
    warm_cache
    sync # write back the previous run's output now, not during this run
    cached=$(cache_pct)
    /usr/bin/time -f '%e %M %U %S' -o "$RES/time.tmp" "$@" >"$RES/$label-$rep.log" 2>&1 ||
        { cat "$RES/$label-$rep.log" >&2; die "$label run $rep failed: $*"; }
    local wall rss user sys
    read -r wall rss user sys <"$RES/time.tmp"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$rep" "$wall" "$rss" "$user" "$sys" "$cached" >>"$RUNS"
    printf '   %-6s round %s: %7.2f s wall  %7.2f s CPU  peak RSS %7.1f MB  (CSV %s%% cached at start)\n' \
        "$label" "$rep" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" \
        "$(awk -v r="$rss" 'BEGIN {print r / 1024}')" "$cached" >&2
}

WD=$WORK/etd
OUT=$WORK/pandas
rm -rf "$WD" "$OUT"
log "etd fetch (untimed: with file:// it hashes and records the catalog and the partitions)"
/usr/bin/time -f '%e %M' -o "$RES/fetch.time" "$ETD" --workdir "$WD" -q fetch "$RECIPE"
echo "etd fetch:   $(awk '{printf "%s s wall, peak RSS %.1f MB (untimed step, not in the figures)", $1, $2 / 1024}' "$RES/fetch.time")" | tee -a "$RES/machine.txt"

log "warm-up: reading the CSVs once before the timed runs (and again, untimed, before every run)"
warm_cache
log "$REPS rounds: etd shard, then pandas"
# pandas writes ~100k files per round, each round into a folder of its own; all are deleted at
# the end, not between rounds: ext4 avoids reusing inodes freed in the last minutes, so creating
# 100k files just after deleting 100k makes the inode allocator search (measured: the baseline's
# kernel time went from 4 s to 41 s, its user time stayed at 7 s).
rm -rf "$OUT" "$OUT"-r*
for rep in $(seq 1 "$REPS"); do
    rm -rf "$WD/shards" "$WD/shards.partial" "$WD/shards.old" "$WD/tmp" # keep the journal
    measure etd "$rep" "$ETD" --workdir "$WD" -q shard "$RECIPE"
    measure pandas "$rep" "$PY" "$HERE/pandas_lc.py" "$CATALOG" "$LC" "$OUT-r$rep"
done
OUT=$OUT-r$REPS

# ---------------------------------------------------------------------------------------------
# Checks and report
log "checking outputs"
CHECK_OK=1
"$PY" "$HERE/atlas_var_report.py" check "$CATALOG" "$WD/shards" "$OUT" --spot 5 | tee "$RES/check.txt" || CHECK_OK=0
{
    echo "outputs:     etd $(find "$WD/shards" -maxdepth 1 -name '*.tar' | wc -l) shards, $(du -cb "$WD/shards"/*.tar | tail -1 | cut -f1) bytes;" \
        "pandas $(find "$OUT" -maxdepth 1 -name '*.npy' | wc -l) files, $(du -sb "$OUT" | cut -f1) bytes ($(du -sk "$OUT" | cut -f1) KiB on disk)"
    echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at end"
} | tee -a "$RES/machine.txt"
"$PY" "$HERE/atlas_var_report.py" report "$RUNS" "$CSV_BYTES" | tee "$RES/report.txt"
echo "(all runs: $RUNS; logs: $RES)"
rm -rf "${OUT%-r*}"-r*
((CHECK_OK)) || die "the outputs of etd and pandas do not agree (see above)"
