#!/usr/bin/env bash
# Benchmark `etd fetch` (ps1-cutouts) against a plain Python requests + ThreadPoolExecutor client,
# both against the PS1 emulator, and check how exactly etd keeps a configured request rate.
#
# Usage: bench/fetch_bench.sh [N_TARGETS] [LATENCY_MS]
#   N_TARGETS   targets for the throughput runs (default 300; 3 filters each, so 4N requests)
#   LATENCY_MS  server time the emulator adds to every answer (default 20); the throughput runs
#               are also done once more with 0 ms (pure client overhead)
# Environment:
#   BENCH_REPS          repetitions of each throughput run (default 3; medians are reported)
#   BENCH_RATE_TARGETS  targets (1 filter each, so 2 requests per target) for the rate run
#                       (default 300: 600 requests at 20/s, about 30 s)
#   BENCH_VENV          Python venv (default bench/work/venv, created from bench/requirements.txt
#                       if missing; the packages are installed into it if `requests` is missing)
#   ETD, ETD_EMULATOR   binaries (default target/release/etd and target/release/etd-emulator;
#                       build with cargo build --release --locked -p etd -p etd-emulators)
# Everything is written under bench/work/fetch/ (gitignored).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
N=${1:-300}
LAT=${2:-20}
REPS=${BENCH_REPS:-3}
RATE_N=${BENCH_RATE_TARGETS:-300}
RATE=20
FILTERS=gri
ETD=${ETD:-$REPO/target/release/etd}
EMU=${ETD_EMULATOR:-$REPO/target/release/etd-emulator}
WORK=$HERE/work/fetch
VENV=${BENCH_VENV:-$HERE/work/venv}
SEED=20241124

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N_TARGETS must be a positive integer, got '$N'"
[[ $LAT =~ ^[0-9]+$ ]] || die "LATENCY_MS must be a non-negative integer, got '$LAT'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer"
[[ $RATE_N =~ ^[1-9][0-9]*$ ]] || die "BENCH_RATE_TARGETS must be a positive integer"
[[ -x $ETD ]] || die "etd not found: $ETD (cargo build --release --locked -p etd -p etd-emulators)"
[[ -x $EMU ]] || die "etd-emulator not found: $EMU (cargo build --release --locked -p etd -p etd-emulators)"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install -y time)"

bench_python requests

mkdir -p "$WORK"
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
RES=$WORK/results/$RUN_ID
# Every run writes into a folder of its own that the script never deletes: ext4 avoids reusing
# inodes freed in the last minutes, and creating the next run's ~1,500 files just after deleting
# the last run's made the kernel's inode search most of the CPU per request (bench/README.md).
# Delete bench/work/fetch/results/ yourself, some minutes before a run, not between runs.
RUN_DIR=$RES/run
mkdir -p "$RES" "$RUN_DIR"
RUNS=$RES/runs.tsv
: >"$RUNS"

# ---------------------------------------------------------------------------------------------
# Machine and versions
COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo " (uncommitted changes in the checkout)" || true)
{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:     nproc=$(nproc), CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), kernel $(uname -r)"
    echo "etd:         $("$ETD" --version 2>&1 | head -1), $ETD (built $(date -u -r "$ETD" '+%Y-%m-%d %H:%M:%S UTC')); checkout now at $COMMIT$DIRTY"
    echo "python:      $("$PY" -c 'import sys, requests, urllib3; print(sys.version.split()[0], "requests", requests.__version__, "urllib3", urllib3.__version__)')"
    echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at start (client, emulator and anything else share the cores)"
    awk -v n="$(nproc)" '$1 > n / 2 {print "WARNING:     the machine looks busy (1-min load " $1 " on " n " cores); timings will be noisy"}' /proc/loadavg
    echo "setup:       throughput N=$N targets x $FILTERS, latency ${LAT} ms and 0 ms, $REPS reps; rate run $RATE_N targets x g at $RATE/s"
} | tee "$RES/machine.txt"

# ---------------------------------------------------------------------------------------------
# Targets and recipes
make_targets() { # n path: deterministic positions, ra in [0, 360), dec in [-20, 80] (all covered)
    "$PY" - "$1" "$2" "$SEED" <<'EOF'
import random, sys
n, path, seed = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
with open(path, "w") as f:
    f.write("id,ra,dec\n")
    for i in range(n):
        f.write(f"t{i:06d},{rng.uniform(0, 360):.6f},{rng.uniform(-20, 80):.6f}\n")
EOF
}

write_recipe() { # path targets base_url filters_yaml rate
    cat >"$1" <<EOF
version: 1
name: bench-fetch
targets: {file: $2}
source:
  ps1-cutouts: {base_url: "$3", filters: $4, size: 64, format: fits}
politeness: {concurrency: 10, rate: $5, retries: 3}
transform:
  image: {outputs: [npy, json]}
EOF
}

make_targets "$N" "$WORK/targets_n$N.csv"
make_targets "$RATE_N" "$WORK/targets_n$RATE_N.csv"
make_targets 20 "$WORK/targets_warmup.csv"

# ---------------------------------------------------------------------------------------------
# Emulator: one fresh emulator per run. Its stdin is a fifo held open by this shell; with
# --exit-on-stdin-eof, closing the fifo makes it write the meter and exit.
EMU_PID='' EMU_FD='' EMU_URL=''
start_emu() { # dir latency_ms
    local dir=$1 lat=$2 i
    rm -f "$dir/emu.in" "$dir/emu.url" "$dir/meter.json"
    mkfifo "$dir/emu.in"
    /usr/bin/time -f '%e %U %S' -o "$dir/emu.time" \
        "$EMU" ps1 --exit-on-stdin-eof --latency-ms "$lat" --meter-file "$dir/meter.json" <"$dir/emu.in" >"$dir/emu.url" 2>"$dir/emu.err" &
    EMU_PID=$!
    exec {EMU_FD}>"$dir/emu.in"
    for i in $(seq 1 200); do
        EMU_URL=$(head -1 "$dir/emu.url" 2>/dev/null || true)
        [[ $EMU_URL == http://* ]] && return 0
        sleep 0.05
    done
    die "emulator did not start (see $dir/emu.err)"
}
stop_emu() { # dir
    exec {EMU_FD}>&-
    wait "$EMU_PID" || die "emulator exited with status $? (see $1/emu.err)"
    [[ -s $1/meter.json ]] || die "emulator wrote no meter ($1/meter.json)"
}

# run_one LABEL LATENCY REP TARGETS_CSV FILTERS RATE: one client run against a fresh emulator;
# appends a row to runs.tsv (see fetch_report.py for the columns).
run_one() {
    local label=$1 lat=$2 rep=$3 targets=$4 filters=$5 rate=$6
    local dir=$RUN_DIR/$label-$lat-$rep
    mkdir -p "$dir"
    start_emu "$dir" "$lat"
    local code=0 files
    if [[ $label == curl ]]; then
        # The fastest HTTP client at hand fetching the URLs etd fetched (from its journal), to
        # /dev/null: the HTTP part of the floor of CPU per request.
        "$PY" - "$targets" "$EMU_URL" "$dir/curl.cfg" <<'EOF'
import json, re, sys
journal, base, cfg = sys.argv[1:4]
with open(cfg, "w") as out:
    for line in open(journal):
        for rec in json.loads(line).get("inputs", []):
            url = re.sub(r"^http://[^/]+/", base.rstrip("/") + "/", rec["url"])
            out.write(f'url = "{url}"\noutput = "/dev/null"\n')
EOF
        /usr/bin/time -f '%e %U %S' -o "$dir/client.time" \
            curl -s -S -Z --parallel-max 10 -K "$dir/curl.cfg" >"$dir/client.log" 2>&1 || code=$?
        files=0
    elif [[ $label == python ]]; then
        /usr/bin/time -f '%e %U %S' -o "$dir/client.time" \
            "$PY" "$HERE/ps1_bulk_client.py" "$EMU_URL" "$targets" "$dir/out" --filters "$filters" --size 64 --workers 10 \
            >"$dir/client.log" 2>&1 || code=$?
        files=$(find "$dir/out" -name '*.fits' -type f 2>/dev/null | wc -l)
    else
        local yfilters
        yfilters="[$(echo "$filters" | sed 's/./&, /g; s/, $//')]"
        write_recipe "$dir/recipe.yaml" "$targets" "$EMU_URL" "$yfilters" "$rate"
        /usr/bin/time -f '%e %U %S' -o "$dir/client.time" \
            "$ETD" --workdir "$dir/wd" -q fetch "$dir/recipe.yaml" >"$dir/client.log" 2>&1 || code=$?
        files=$(find "$dir/wd/raw/ps1-cutouts" -name '*.fits' -type f 2>/dev/null | wc -l)
    fi
    stop_emu "$dir"
    local wall user sys swall suser ssys ntargets
    read -r wall user sys < <(tail -1 "$dir/client.time")
    read -r swall suser ssys < <(tail -1 "$dir/emu.time")
    ntargets=$(($(wc -l <"$targets") - 1))
    [[ $label == curl ]] && ntargets=$(wc -l <"$targets") # a journal: one line per target
    [[ $label == warmup* ]] && return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$lat" "$rep" "$code" "$wall" "$user" "$sys" \
        "$suser" "$ssys" "$files" "$((ntargets * ${#filters}))" "$dir/meter.json" >>"$RUNS"
    printf '   %-8s latency %3s ms rep %s: exit %s, %6.2f s wall, %5.2f s CPU, %s files, %s requests\n' "$label" "$lat" "$rep" \
        "$code" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" "$files" \
        "$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["requests"])' "$dir/meter.json")" >&2
    if ((code != 0)); then
        echo "   ($label exited $code; last lines of $dir/client.log:)" >&2
        tail -3 "$dir/client.log" >&2
    fi
}

log "warm-up (untimed): 20 targets with each client, to load binaries and Python modules"
run_one warmup-etd 0 0 "$WORK/targets_warmup.csv" "$FILTERS" 1000/s
run_one warmup-python 0 0 "$WORK/targets_warmup.csv" "$FILTERS" 1000/s

log "(a) throughput: $N targets x $FILTERS, 10 in flight, $REPS rounds of etd and python at ${LAT} ms and 0 ms"
LATS=("$LAT" 0)
((LAT == 0)) && LATS=(0)
for rep in $(seq 1 "$REPS"); do
    for lat in "${LATS[@]}"; do
        run_one etd "$lat" "$rep" "$WORK/targets_n$N.csv" "$FILTERS" 1000/s
        run_one python "$lat" "$rep" "$WORK/targets_n$N.csv" "$FILTERS" 1000/s
        run_one etd-free "$lat" "$rep" "$WORK/targets_n$N.csv" "$FILTERS" 1000000/s
        run_one curl "$lat" "$rep" "$RUN_DIR/etd-$lat-$rep/wd/journal.jsonl" "$FILTERS" -
    done
done

# Same bytes: every FITS file the Python client wrote is identical to etd's raw file.
for lat in "${LATS[@]}"; do
    e=$RUN_DIR/etd-$lat-1/wd/raw/ps1-cutouts p=$RUN_DIR/python-$lat-1/out
    if diff -rq -x ps1filenames.txt "$e" "$p" >"$RES/diff-$lat.txt"; then
        echo "output: latency $lat ms, rep 1: all $(find "$p" -name '*.fits' | wc -l) FITS files byte-identical between etd (raw/) and python" | tee -a "$RES/outputs.txt"
    else
        echo "output: latency $lat ms, rep 1: etd and python files DIFFER ($(wc -l <"$RES/diff-$lat.txt") entries, see $RES/diff-$lat.txt)" | tee -a "$RES/outputs.txt"
    fi
done

# The floor of CPU per request: the kernel's work of storing the same files as durably as etd's raw
# engine does (per target: folder made, files written to temp files; per commit of 16 targets:
# every file fsynced, all renamed, each folder and their parent fsynced once), with no HTTP at
# all. The HTTP part is curl's run above.
log "floor: the kernel CPU of storing etd's files durably, without HTTP, $REPS runs"
FLOOR=$RES/floor.txt
: >"$FLOOR"
for rep in $(seq 1 "$REPS"); do
    "$PY" "$HERE/durable_floor.py" "$RUN_DIR/etd-0-1/wd/raw/ps1-cutouts" "$RUN_DIR/floor-$rep" | tee -a "$FLOOR" >&2
done

log "(b) rate accuracy: etd at $RATE/s, $RATE_N targets x g, latency ${LAT} ms"
run_one etd-rate "$LAT" 1 "$WORK/targets_n$RATE_N.csv" g "$RATE/s"

echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at end" | tee -a "$RES/machine.txt"
"$PY" "$HERE/fetch_report.py" "$RUNS" "$N" "$FILTERS" "$RATE_N" "$RATE" "$FLOOR" | tee "$RES/report.txt"
echo "(all runs: $RUNS)"
