#!/usr/bin/env bash
# Benchmark `etd publish` into a local origin folder against `cp` + `sha256sum` of the copies
# (and `cp` + `sync` + `sha256sum`), on the same shards, in the same run.
#
# Usage: bench/publish_bench.sh [GB]
#   GB  size of the dataset in GiB (positive integer, default 2): 64 files of GB*16 MiB of random
#       bytes from /dev/urandom, packed by etd itself into 32 uncompressed shards (2 samples each)
# Environment:
#   BENCH_REPS       rounds (default 3); each round runs every contender once, medians reported
#   BENCH_WAIT_IDLE  minutes to wait, before the timed runs, while a `.ci/run`, `cargo` or
#                    `rustc` process is running (default 0: do not wait); on timeout the run goes
#                    ahead and says so
#   BENCH_FILE_MIB   size of each of the 64 files in MiB, instead of GB*16 (for quick checks)
#   ETD              etd binary (default target/release/etd; cargo build --release --locked -p etd)
# Needs root for `echo 3 > /proc/sys/vm/drop_caches` (cold-cache runs); without it every run is a
# warm-cache run (the shards are read, untimed, before each run) and the report says so.
# Everything is written under bench/work/publish/ (gitignored); the dataset is made anew each run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
GB=${1:-2}
REPS=${BENCH_REPS:-3}
WAIT_IDLE=${BENCH_WAIT_IDLE:-0}
ETD=${ETD:-$REPO/target/release/etd}
WORK=$HERE/work/publish
NFILES=64

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

[[ $GB =~ ^[1-9][0-9]*$ ]] || die "GB must be a positive integer, got '$GB'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer"
[[ $WAIT_IDLE =~ ^[0-9]+$ ]] || die "BENCH_WAIT_IDLE must be a number of minutes"
[[ -x $ETD ]] || die "etd not found: $ETD (cargo build --release --locked -p etd)"
ETD=$(cd "$(dirname "$ETD")" && pwd)/$(basename "$ETD")
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install -y time)"
command -v python3 >/dev/null || die "python3 is missing"
# The interpreter itself, not a wrapper such as a pyenv shim (which adds ~0.1 s per start).
PY=$(python3 -c 'import sys; print(sys.executable)')
FILE_MIB=${BENCH_FILE_MIB:-$((GB * 1024 / NFILES))}
[[ $FILE_MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_FILE_MIB must be a positive integer"

# ---------------------------------------------------------------------------------------------
# Fresh work folders (results of earlier runs are kept), then the disk check: the source files,
# the shards and one published copy at a time, each about GB.
mkdir -p "$WORK"
rm -rf "$WORK/data" "$WORK/wd" "$WORK/origin" "$WORK/cp" "$WORK"/recipe*.yaml
NEED=$((3 * NFILES * FILE_MIB * 1024 * 1024 + 256 * 1024 * 1024))
AVAIL=$(df -B1 --output=avail "$WORK" | tail -1 | tr -d ' ')
if ((AVAIL < NEED)); then
    die "$(awk -v a="$AVAIL" -v n="$NEED" 'BEGIN {printf "%.1f GiB free, %.1f GiB needed", a/2^30, n/2^30}') below $WORK (3 x the dataset: sources, shards, one copy); try a smaller GB"
fi

RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
RES=$WORK/results/$RUN_ID
mkdir -p "$RES"
RUNS=$RES/runs.tsv
: >"$RUNS"

# ---------------------------------------------------------------------------------------------
# Machine and versions
SRC=$REPO
COMMIT=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
COMMIT_SUBJ=$(git -C "$SRC" log -1 --format=%s 2>/dev/null | cut -c1-60 || true)
DIRTY=$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (uncommitted changes in the checkout)" || true)
{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:     nproc=$(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), RAM $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "work fs:     $(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}') ($WORK), $(awk -v a="$AVAIL" 'BEGIN {printf "%.1f GiB", a/2^30}') free before the run"
    echo "etd:         $("$ETD" --version 2>&1 | head -1), $ETD (built $(date -u -r "$ETD" '+%Y-%m-%d %H:%M UTC')); checkout at $COMMIT $COMMIT_SUBJ$DIRTY"
    echo "tools:       $(cp --version | head -1), $(sha256sum --version | head -1 | sed 's/.*) //;s/^/sha256sum /'), $(sync --version | head -1 | sed 's/.*) //;s/^/sync /'), python $("$PY" -c 'import sys; print(sys.version.split()[0])') ($PY)"
    echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at start (before making the dataset)"
} | tee "$RES/machine.txt"

# ---------------------------------------------------------------------------------------------
# Dataset: random (incompressible) files, fetched and sharded by etd (untimed)
log "making $NFILES files of $FILE_MIB MiB from /dev/urandom in $WORK/data"
mkdir -p "$WORK/data"
for i in $(seq 0 $((NFILES - 1))); do
    dd if=/dev/urandom of="$WORK/data/$(printf 'f%03d' "$i").bin" bs=1M count="$FILE_MIB" status=none
done

write_recipe() { # path version
    cat >"$1" <<EOF
version: 1
name: pubbench
source: {local: {dir: data}}
shard: {max_samples: 2, compression: none}
publish: {origin: $WORK/origin, path: ns/pubbench, version: $2}
EOF
}
WD=$WORK/wd
SHARDS=$WD/shards
write_recipe "$WORK/recipe.yaml" v0
log "etd fetch + etd shard (untimed)"
"$ETD" --workdir "$WD" -q fetch "$WORK/recipe.yaml"
"$ETD" --workdir "$WD" -q shard "$WORK/recipe.yaml"
[[ -s $SHARDS/manifest.json ]] || die "etd shard wrote no manifest"
NSHARDS=$("$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["shards"]))' "$SHARDS/manifest.json")
NOBJ=$(find "$SHARDS" -maxdepth 1 -type f | wc -l)
((NOBJ == NSHARDS + 1)) || die "$SHARDS holds $NOBJ files, expected $NSHARDS shards + manifest.json"
BYTES=$(find "$SHARDS" -maxdepth 1 -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')
echo "dataset:     $NSHARDS shards + manifest.json = $NOBJ files, $BYTES bytes; source $NFILES x $FILE_MIB MiB random .bin files" | tee -a "$RES/machine.txt"

# ---------------------------------------------------------------------------------------------
# Page cache: cold (sync + drop_caches before every run) if permitted, else warm
cache_pct() { # share of the shards' pages in the page cache (fincore)
    command -v fincore >/dev/null || { echo NA; return; }
    local res pages
    res=$(fincore -nb -o RES "$SHARDS"/* | awk '{s += $1} END {printf "%.0f\n", s}')
    pages=$(find "$SHARDS" -maxdepth 1 -type f -printf '%s\n' | awk '{s += int(($1 + 4095) / 4096) * 4096} END {printf "%.0f\n", s}')
    awk -v r="$res" -v b="$pages" 'BEGIN {printf "%.1f", 100 * r / b}'
}
warm_tools() { # the contenders' programs (not the data) back into the cache after a drop
    "$ETD" --version >/dev/null
    "$PY" -c 'import json' >/dev/null
    cp --version >/dev/null
    sha256sum --version >/dev/null
    sync --version >/dev/null
}
sync
if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then
    MODE=cold
    echo "page cache:  cold: before every run, sync; echo 3 > /proc/sys/vm/drop_caches (then the tools' binaries are run once, untimed)" | tee -a "$RES/machine.txt"
else
    MODE=warm
    echo "page cache:  WARM: drop_caches is not permitted here; the shards are read (untimed) before every run" | tee -a "$RES/machine.txt"
fi
prepare() { # untimed, before every run
    sync
    if [[ $MODE == cold ]]; then
        echo 3 >/proc/sys/vm/drop_caches || die "drop_caches failed midway"
        warm_tools
    else
        cat "$SHARDS"/* >/dev/null
        warm_tools
    fi
}

# ---------------------------------------------------------------------------------------------
# Contenders
ORIGIN_DIR=$WORK/origin/ns/pubbench
clean_outputs() { rm -rf "$WORK/cp" "$ORIGIN_DIR"; }

measure() { # label rep cmd... : one timed run (outputs of earlier runs already deleted), a row of runs.tsv
    local label=$1 rep=$2 code=0 cached wall user sys
    shift 2
    prepare
    cached=$(cache_pct)
    /usr/bin/time -f '%e %U %S' -o "$RES/time.tmp" "$@" >"$RES/$label-$rep.log" 2>&1 || code=$?
    read -r wall user sys < <(tail -1 "$RES/time.tmp")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$rep" "$code" "$wall" "$user" "$sys" "$cached" >>"$RUNS"
    printf '   %-18s round %s: exit %s, %6.2f s wall, %5.2f s CPU, %s%% of the shards cached at start\n' \
        "$label" "$rep" "$code" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" "$cached" >&2
    ((code == 0)) || { echo "   ($label failed; last lines of $RES/$label-$rep.log:)" >&2; tail -3 "$RES/$label-$rep.log" >&2; }
    return 0
}

run_etd() { # rep
    local v=v$1
    clean_outputs
    write_recipe "$WORK/recipe-$v.yaml" "$v"
    measure etd "$1" "$ETD" --workdir "$WD" -q publish "$WORK/recipe-$v.yaml"
    # untimed: the version holds every shard and the manifest with the right sizes, nothing else
    local d=$ORIGIN_DIR/$v n b
    n=$(find "$d" -maxdepth 1 -type f | wc -l)
    b=$(find "$d" -maxdepth 1 -type f -printf '%s\n' | awk '{s += $1} END {printf "%.0f\n", s}')
    [[ $n == "$NOBJ" && $b == "$BYTES" ]] || die "etd round $1: $d holds $n files, $b bytes; expected $NOBJ, $BYTES"
    [[ ! -e $ORIGIN_DIR/.etd-staging-$v ]] || die "etd round $1 left its staging folder"
}

run_cp() { # label rep sync(0|1)
    local dest=$WORK/cp/$1-$2
    clean_outputs
    mkdir -p "$dest"
    # Timed: copy, [fsync every copy and the folder,] hash the copies, check against the manifest.
    measure "$1" "$2" bash -c '
        set -euo pipefail
        cp "$1"/* "$2"/
        if [[ $3 == 1 ]]; then sync "$2"/* "$2"; fi
        sha256sum "$2"/* | "$5" "$4" "$1/manifest.json"' _ "$SHARDS" "$dest" "$3" "$HERE/publish_check.py" "$PY"
}

if ((WAIT_IDLE > 0)); then
    log "waiting up to $WAIT_IDLE min while .ci/run, cargo or rustc is running"
    start=$(date +%s)
    while pgrep -f '\.ci/run' >/dev/null || pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null; do
        if (($(date +%s) - start > WAIT_IDLE * 60)); then
            echo "busy:        still busy after $WAIT_IDLE min of waiting (.ci/run, cargo or rustc running); timed runs started anyway" | tee -a "$RES/machine.txt"
            break
        fi
        sleep 20
    done
    echo "waited:      $(($(date +%s) - start)) s for the machine to be free of builds/CI" | tee -a "$RES/machine.txt"
fi
echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) before the timed runs" | tee -a "$RES/machine.txt"

log "$REPS rounds: etd, cp+sha256sum, cp+sync+sha256sum ($MODE cache; outputs deleted before each run)"
for rep in $(seq 1 "$REPS"); do
    run_etd "$rep"
    run_cp cp+sha256sum "$rep" 0
    run_cp cp+sync+sha256sum "$rep" 1
done
clean_outputs
rm -f "$RES/time.tmp"

echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at end" | tee -a "$RES/machine.txt"
"$PY" "$HERE/publish_report.py" "$RUNS" "$BYTES" "$NOBJ" | tee "$RES/report.txt"
echo "(all runs: $RUNS)"
