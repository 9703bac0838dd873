#!/usr/bin/env bash
# Benchmark the distributed shard: `etd shard` of a large local dataset split into N = 1, 2, 4
# tasks on this host (`--task-index I --num-tasks N`, the N tasks at once, one thread each, as
# batch tasks with one CPU), then `etd shard --merge`, against one `etd shard` with one thread.
# Reports the wall time of the parts stage, each task's CPU time and peak RSS, and the merge's
# wall and RSS (N = 1 is one whole `etd shard`: no parts, no merge); checks that every N gives the single-process shards byte for byte.
#
# Usage: bench/split_shard_bench.sh [FILES] [ETD_BINARY]
#   FILES       number of 64x64 float32 FITS files (default 20000)
#   ETD_BINARY  etd to benchmark (default: <repo>/target/release/etd)
# Environment:
#   BENCH_VENV  Python venv with numpy (default: bench/work/venv, from bench/requirements.txt)
#   BENCH_TASKS task counts to run (default "1 2 4")
#   ETD_SRC     git checkout the binary was built from, for the commit line
# Everything is written under bench/work/split/ (gitignored).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
FILES=${1:-20000}
ETD=${2:-$REPO/target/release/etd}
TASKS=${BENCH_TASKS:-1 2 4}
WORK=$HERE/work
VENV=${BENCH_VENV:-$WORK/venv}
SPLIT=$WORK/split

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

[[ $FILES =~ ^[1-9][0-9]*$ ]] || die "FILES must be a positive integer, got '$FILES'"
[[ -x $ETD ]] || die "etd binary not found or not executable: $ETD (build it with cargo build --release)"
ETD=$(cd "$(dirname "$ETD")" && pwd)/$(basename "$ETD")
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install -y time)"
bench_python numpy
bench_commit

mkdir -p "$SPLIT"
DATA=$WORK/data/n$FILES
log "data: $FILES FITS files in $DATA"
"$PY" "$HERE/make_fits.py" "$DATA" "$FILES" --seed 20240607 >/dev/null

RECIPE=$SPLIT/recipe.yaml
cat >"$RECIPE" <<EOF
version: 1
name: bench-split
source:
  local: {dir: $DATA, pattern: "*.fits"}
transform:
  image: {outputs: [npy, json]}
shard:
  max_samples: 2000
  compression: zstd
  level: 3
EOF

echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: nproc=$(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), load avg $(cut -d' ' -f1-3 /proc/loadavg) at start"
echo "etd:     $ETD ($("$ETD" --version | head -1)), commit $COMMIT $COMMIT_SUBJ$DIRTY"
echo "data:    $FILES files of 64x64 float32 FITS -> npy + json samples, zstd level 3, 2000 samples a shard"
echo

W=$SPLIT/work
rm -rf "$W"
"$ETD" -q --workdir "$W" fetch "$RECIPE"

# timed LABEL OUTFILE CMD...: run CMD under /usr/bin/time, write "wall user sys maxrss_kib".
timed() {
    local out=$1
    shift
    /usr/bin/time -f '%e %U %S %M' -o "$out" "$@"
}

log "one etd shard, one thread (the reference)"
rm -rf "$W/shards" "$W/parts"
timed "$SPLIT/single.time" env RAYON_NUM_THREADS=1 "$ETD" -q --workdir "$W" shard "$RECIPE" || die "etd shard failed"
rm -rf "$SPLIT/reference"
cp -r "$W/shards" "$SPLIT/reference"
read -r wall user sys rss <"$SPLIT/single.time"
printf '%-10s %8s %10s %24s %9s %8s %10s %10s\n' "run" "wall_s" "parts_s" "task_cpu_s (each)" "task_MiB" "merge_s" "merge_cpu" "merge_MiB"
printf '%-10s %8s %10s %24s %9s %8s %10s %10s\n' "single" "$wall" "-" "$(echo "$user + $sys" | bc)" "$((rss / 1024))" "-" "-" "-"

for n in $TASKS; do
    rm -rf "$W/shards" "$W/parts"
    start=$(date +%s.%N)
    pids=()
    for i in $(seq 0 $((n - 1))); do
        timed "$SPLIT/task-$n-$i.time" env RAYON_NUM_THREADS=1 "$ETD" -q --workdir "$W" shard "$RECIPE" \
            --task-index "$i" --num-tasks "$n" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || die "a shard task of N=$n failed"; done
    parts=$(echo "$(date +%s.%N) - $start" | bc)
    # `--num-tasks 1` writes one part too, so every N has a merge.
    timed "$SPLIT/merge-$n.time" env RAYON_NUM_THREADS=1 "$ETD" -q --workdir "$W" shard "$RECIPE" --merge ||
        die "the merge of N=$n failed"
    read -r mwall mu ms mrss <"$SPLIT/merge-$n.time"
    mcpu=$(echo "$mu + $ms" | bc)
    cpus=""
    mem=0
    for i in $(seq 0 $((n - 1))); do
        read -r _ u s r <"$SPLIT/task-$n-$i.time"
        cpus="$cpus$(echo "$u + $s" | bc) "
        ((r > mem)) && mem=$r
    done
    diff -r "$W/shards" "$SPLIT/reference" >/dev/null || die "N=$n: the merged shards differ from one etd shard"
    printf '%-10s %8.2f %10.2f %24s %9s %8s %10s %10s\n' "N=$n" "$(echo "$parts + $mwall" | bc)" "$parts" "${cpus% }" \
        "$((mem / 1024))" "$mwall" "$mcpu" "$((mrss / 1024))"
done
echo
echo "wall_s = parts_s + merge_s; every N gave the single run's shards byte for byte (diff -r)."
