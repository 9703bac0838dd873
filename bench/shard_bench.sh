#!/usr/bin/env bash
# Benchmark `etd shard` against tar|zstd and webdataset.ShardWriter on N synthetic FITS files.
#
# Usage: bench/shard_bench.sh [N] [ETD_BINARY]
#   N           number of 64x64 float32 FITS files (default 20000; 4N are also made for the
#               memory-flatness run)
#   ETD_BINARY  etd to benchmark (default: <repo>/target/release/etd)
# Environment:
#   BENCH_VENV     Python venv with numpy/webdataset/astropy (default: bench/work/venv, created
#                  from bench/requirements.txt if missing)
#   BENCH_REPS     timed repetitions per tool (default 5; the median is reported)
#   BENCH_THREADS  threads for etd (RAYON_NUM_THREADS) and zstd -T (default: nproc)
#   BENCH_SKIP_4N  set to 1 to skip the 4N memory-flatness run
#   ETD_SRC        git checkout the binary was built from, for the commit line (default: the
#                  checkout the binary lives in, else this repository)
# Everything is written under bench/work/ (gitignored).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
N=${1:-20000}
ETD=${2:-$REPO/target/release/etd}
REPS=${BENCH_REPS:-5}
THREADS=${BENCH_THREADS:-$(nproc)}
WORK=$HERE/work
VENV=${BENCH_VENV:-$WORK/venv}
SEED=20240607

# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPS must be a positive integer"
[[ -x $ETD ]] || die "etd binary not found or not executable: $ETD (build it with cargo build --release)"
ETD=$(cd "$(dirname "$ETD")" && pwd)/$(basename "$ETD")

# ---------------------------------------------------------------------------------------------
# Tools
apt_install() {
    local pkg=$1
    [[ $(id -u) -eq 0 ]] || die "$pkg is missing; install it (apt-get install -y $pkg)"
    log "installing $pkg"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$pkg" >/dev/null; }
}
command -v zstd >/dev/null || apt_install zstd
[[ -x /usr/bin/time ]] || apt_install time
command -v tar >/dev/null || die "tar is missing"
tar --version | head -1 | grep -q 'GNU tar' || die "GNU tar is needed (for --sort=name)"

bench_python numpy webdataset astropy

mkdir -p "$WORK"
RUN_ID=$(date -u +%Y%m%dT%H%M%SZ)
RES_DIR=$WORK/results/$RUN_ID
mkdir -p "$RES_DIR"
RESULTS=$RES_DIR/runs.tsv # label n rep wall_s peak_rss_kib user_s sys_s input_cached_pct
: >"$RESULTS"

# ---------------------------------------------------------------------------------------------
# Machine and versions
bench_commit
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
FS=$(df -T "$WORK" | awk 'NR==2 {print $2 " on " $1}')
{
    echo "date:        $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine:     nproc=$(nproc), CPU: $CPU, RAM $MEM, kernel $(uname -r)"
    echo "work fs:     $FS ($WORK)"
    echo "etd:         $ETD"
    echo "etd version: $("$ETD" --version 2>&1 | head -1)"
    echo "etd commit:  $COMMIT $COMMIT_SUBJ$DIRTY (from $SRC)"
    echo "tools:       $(tar --version | head -1); $(zstd --version); python $("$PY" -c 'import sys,webdataset,numpy;print(sys.version.split()[0], "webdataset", webdataset.__version__, "numpy", numpy.__version__)')"
    echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at start (other work on the machine skews timings)"
    awk -v n="$(nproc)" '$1 > n / 2 {print "WARNING:     the machine looks busy (1-min load " $1 " on " n " cores); timings will be noisy"}' /proc/loadavg
    echo "threads:     etd RAYON_NUM_THREADS=$THREADS, zstd -T$THREADS; reps=$REPS (median reported)"
} | tee "$RES_DIR/machine.txt"

# ---------------------------------------------------------------------------------------------
# Data and recipes
make_data() { # n -> data dir path
    local n=$1 dir=$WORK/data/n$1
    mkdir -p "$WORK/data"
    "$PY" "$HERE/make_fits.py" "$dir" "$n" --seed "$SEED" --check 20 >&2
    echo "$dir"
}

write_recipe() { # n label -> recipe path; label: none | zstd (pass-through fits) | npy (fits -> npy)
    local n=$1 label=$2 f=$WORK/recipe_n$1_$2.yaml comp=$2 image="{outputs: [fits]}" level=""
    if [[ $label == npy ]]; then
        comp=none
        image="{outputs: [npy], nan: zero, scale: none}"
    fi
    # etd rejects `level` without zstd
    [[ $comp == zstd ]] && level="
  level: 3"
    cat >"$f" <<EOF
version: 1
name: bench
source:
  local: {dir: data/n$n, pattern: "*.fits"}
transform:
  image: $image
shard:
  max_samples: 10000
  max_bytes: 1GiB
  compression: $comp$level
EOF
    echo "$f"
}

input_bytes() { find "$1" -maxdepth 1 -name '*.fits' -type f -printf '%s\n' | awk '{s+=$1} END {print s}'; }

warm_cache() { # read every input so the timed run sees a warm page cache
    find "$1" -maxdepth 1 -name '*.fits' -type f -print0 | xargs -0 cat >/dev/null
}

cache_pct() { # percentage of the input's pages resident in the page cache (fincore)
    command -v fincore >/dev/null || { echo NA; return; }
    local res pages
    res=$(find "$1" -maxdepth 1 -name '*.fits' -type f -print0 | xargs -0 fincore -nb -o RES | awk '{s += $1} END {print s}')
    pages=$(find "$1" -maxdepth 1 -name '*.fits' -type f -printf '%s\n' | awk '{s += int(($1 + 4095) / 4096) * 4096} END {print s}')
    awk -v r="$res" -v b="$pages" 'BEGIN {printf "%.1f", 100 * r / b}'
}

# measure LABEL N REP CMD... : time one run; record wall seconds, peak RSS (KiB), user and sys
# CPU seconds, and how much of the input was in the page cache when the run started.
# If RSS_FILES is set, the peak RSS recorded is the sum of the numbers in those files.
# Before each run the inputs are read once more (untimed): the page cache is not left alone on
# every machine (e.g. DAMON proactive reclaim pages out cache idle for ~1 min), and one warm-up at
# the start would leave later runs partly cold.
RSS_FILES=()
measure() {
    local label=$1 n=$2 rep=$3 dir=$WORK/data/n$2
    shift 3
    warm_cache "$dir"
    sync # flush dirty pages of earlier runs so they are not written back during this one
    local cached
    cached=$(cache_pct "$dir")
    /usr/bin/time -f '%e %M %U %S' -o "$RES_DIR/time.tmp" "$@" || die "$label run failed: $*"
    local wall rss user sys f
    read -r wall rss user sys <"$RES_DIR/time.tmp"
    if ((${#RSS_FILES[@]})); then
        rss=0
        for f in "${RSS_FILES[@]}"; do rss=$((rss + $(tail -1 "$f"))); done
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$n" "$rep" "$wall" "$rss" "$user" "$sys" "$cached" >>"$RESULTS"
    printf '   %-10s n=%-6s rep %s: %6.2f s wall  %5.2f s CPU  peak RSS %6.1f MB  (input %s%% cached at start)\n' \
        "$label" "$n" "$rep" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}')" \
        "$(awk -v r="$rss" 'BEGIN {print r / 1024}')" "$cached" >&2
}

# ---------------------------------------------------------------------------------------------
# The contenders on N files
etd_fetch_timed() { # n label rep
    local w=$WORK/etd/n$1_$2
    rm -rf "$w"
    measure "etd-fetch" "$1" "$3" env RAYON_NUM_THREADS="$THREADS" "$ETD" -q --workdir "$w" fetch "$WORK/recipe_n$1_$2.yaml"
}

etd_shard() { # n label rep  (label: none | zstd | npy; the workdir was fetched before)
    local w=$WORK/etd/n$1_$2
    rm -rf "$w/shards" "$w/shards.partial" "$w/shards.old"
    measure "etd-$2" "$1" "$3" env RAYON_NUM_THREADS="$THREADS" "$ETD" -q --workdir "$w" shard "$WORK/recipe_n$1_$2.yaml"
}

etd_run() { # n rep: the whole job from an empty workdir (fetch hashes every input, then zstd shards)
    local w=$WORK/etd/n$1_run
    rm -rf "$w"
    measure "etd-run" "$1" "$2" env RAYON_NUM_THREADS="$THREADS" "$ETD" -q --workdir "$w" run "$WORK/recipe_n$1_zstd.yaml"
}

tar_plain() { # n rep
    local out=$WORK/out/tar && rm -rf "$out" && mkdir -p "$out"
    measure "tar-plain" "$1" "$2" bash -c '
        set -euo pipefail
        tar --sort=name -C "$1" -cf "$3" -T "$2"
        sync "$3"' _ "$DATA" "$LIST" "$out/bench.tar"
}

tar_zstd() { # n rep
    local out=$WORK/out/tarzstd && rm -rf "$out" && mkdir -p "$out"
    # Outer time: wall clock and CPU of the whole pipeline. Inner times: peak RSS of tar and of
    # zstd, summed (the outer %M would only be the largest single process of the pipeline).
    RSS_FILES=("$out/tar.rss" "$out/zstd.rss")
    measure "tar-zstd" "$1" "$2" bash -c '
        set -euo pipefail
        /usr/bin/time -f %M -o "$4/tar.rss" tar --sort=name -C "$1" -cf - -T "$2" |
            /usr/bin/time -f %M -o "$4/zstd.rss" zstd -q -3 -T"$5" -o "$3"
        sync "$3"' _ "$DATA" "$LIST" "$out/bench.tar.zst" "$out" "$THREADS"
    RSS_FILES=()
}

wds() { # n rep
    local out=$WORK/out/wds && rm -rf "$out"
    measure "wds-shardw" "$1" "$2" "$PY" "$HERE/wds_shard.py" "$DATA" "$out"
}

py_npy() { # n rep
    local out=$WORK/out/pynpy && rm -rf "$out"
    measure "py-npy" "$1" "$2" "$PY" "$HERE/astropy_npy_shard.py" "$DATA" "$out"
}

# The floor: the computations etd cannot skip, each timed alone with the fastest tool at hand, so
# that a target out of reach on this machine is shown by measurement. Only user CPU counts in the
# floor (report.py): the reads and writes every route also pays are left out, so it is a lower bound.
floor_parts() { # n rep
    # zstd level 3 alone, on the bytes etd compresses (tar-plain's archive of the same files).
    measure "zstd-alone" "$1" "$2" bash -c 'zstd -q -3 -T"$2" -c "$1" >/dev/null' _ "$WORK/out/tar/bench.tar" "$THREADS"
    # sha256 of every input file, as `etd run`'s fetch computes it (OpenSSL uses the same SHA
    # extensions); its kernel time is the opening and reading of the inputs every route pays.
    measure "sha256-in" "$1" "$2" bash -c 'cd "$1" && xargs -a "$2" openssl dgst -sha256 >/dev/null' _ "$DATA" "$LIST"
    # sha256 of the shards, as the manifest records it (crc32c, with SSE4.2, is ~0.05 s; md5 only
    # with `shard.md5: true`, which the benchmark recipes do not set).
    measure "digest-zstd" "$1" "$2" bash -c 'openssl dgst -sha256 "$@" >/dev/null' _ \
        "$WORK/etd/n$1_zstd/shards/"*.tar.zst
    measure "digest-none" "$1" "$2" bash -c 'openssl dgst -sha256 "$@" >/dev/null' _ \
        "$WORK/etd/n$1_none/shards/"*.tar
}

BYTES4=0
DATA=$(make_data "$N")
BYTES=$(input_bytes "$DATA")
LIST=$WORK/data/n$N.list
(cd "$DATA" && find . -maxdepth 1 -name '*.fits' -printf '%f\n' | LC_ALL=C sort) >"$LIST"
write_recipe "$N" none >/dev/null
write_recipe "$N" zstd >/dev/null
write_recipe "$N" npy >/dev/null
echo "input:       $N files, $BYTES bytes ($(awk -v b="$BYTES" 'BEGIN {printf "%.1f MB", b/1e6}'))" | tee -a "$RES_DIR/machine.txt"

log "warm-up: reading the $N input files once before the timed runs (and again, untimed, before each run)"
warm_cache "$DATA"
log "etd fetch (hashing pass, timed separately), $REPS runs"
for rep in $(seq 1 "$REPS"); do etd_fetch_timed "$N" zstd "$rep"; done
for label in none npy; do
    rm -rf "$WORK/etd/n${N}_$label"
    "$ETD" -q --workdir "$WORK/etd/n${N}_$label" fetch "$WORK/recipe_n${N}_$label.yaml"
done

log "shard benchmark on $N files, $REPS rounds (tools interleaved within each round)"
for rep in $(seq 1 "$REPS"); do
    etd_shard "$N" none "$rep"
    tar_plain "$N" "$rep"
    etd_shard "$N" zstd "$rep"
    tar_zstd "$N" "$rep"
    etd_run "$N" "$rep"
    wds "$N" "$rep"
    etd_shard "$N" npy "$rep"
    py_npy "$N" "$rep"
done

command -v openssl >/dev/null || die "openssl is needed for the floor measurements"
log "floor: zstd alone and the digests etd computes, $REPS runs"
for rep in $(seq 1 "$REPS"); do floor_parts "$N" "$rep"; done

# Sanity: every tool wrote N members and the same bytes.
log "checking outputs"
count_members() { # EXT archives... (.tar or .tar.zst); counts .EXT members over all of them
    local ext=$1 n=0 f
    shift
    for f in "$@"; do
        if [[ $f == *.zst ]]; then
            n=$((n + $(zstd -dc "$f" | tar -tf - | grep -c "\.$ext\$")))
        else
            n=$((n + $(tar -tf "$f" | grep -c "\.$ext\$")))
        fi
    done
    echo $n
}
sizes() { du -cb "$@" | tail -1 | cut -f1; }
ETD_NONE_SHARDS=("$WORK/etd/n${N}_none/shards/"*.tar)
ETD_ZSTD_SHARDS=("$WORK/etd/n${N}_zstd/shards/"*.tar.zst)
ETD_RUN_SHARDS=("$WORK/etd/n${N}_run/shards/"*.tar.zst)
ETD_NPY_SHARDS=("$WORK/etd/n${N}_npy/shards/"*.tar)
WDS_SHARDS=("$WORK/out/wds/"*.tar)
PYNPY_SHARDS=("$WORK/out/pynpy/"*.tar)
output_line() { # label ext archives...
    local label=$1 ext=$2
    shift 2
    printf 'output: %-10s %3d files %12d bytes  %6d .%s members\n' "$label" $# "$(sizes "$@")" "$(count_members "$ext" "$@")" "$ext"
}
{
    output_line etd-none fits "${ETD_NONE_SHARDS[@]}"
    output_line tar-plain fits "$WORK/out/tar/bench.tar"
    output_line etd-zstd fits "${ETD_ZSTD_SHARDS[@]}"
    output_line tar-zstd fits "$WORK/out/tarzstd/bench.tar.zst"
    output_line etd-run fits "${ETD_RUN_SHARDS[@]}"
    output_line wds-shardw fits "${WDS_SHARDS[@]}"
    output_line etd-npy npy "${ETD_NPY_SHARDS[@]}"
    output_line py-npy npy "${PYNPY_SHARDS[@]}"
} | tee "$RES_DIR/outputs.txt"
# Byte-level check on one sample: the first file comes out of every archive unchanged.
FIRST=$(head -1 "$LIST")
STEM=${FIRST%.fits}
cmp -s "$DATA/$FIRST" <(tar -xOf "${ETD_NONE_SHARDS[0]}" "$STEM.fits") || die "etd-none: $FIRST differs from its input"
cmp -s "$DATA/$FIRST" <(tar -xOf "$WORK/out/tar/bench.tar" "$FIRST") || die "tar-plain: $FIRST differs"
cmp -s "$DATA/$FIRST" <(zstd -dc "${ETD_ZSTD_SHARDS[0]}" | tar -xOf - "$STEM.fits") || die "etd-zstd: $FIRST differs from its input"
cmp -s "$DATA/$FIRST" <(zstd -dc "$WORK/out/tarzstd/bench.tar.zst" | tar -xOf - "$FIRST") || die "tar-zstd: $FIRST differs"
cmp -s "$DATA/$FIRST" <(zstd -dc "${ETD_RUN_SHARDS[0]}" | tar -xOf - "$STEM.fits") || die "etd-run: $FIRST differs from its input"
cmp -s "$DATA/$FIRST" <(tar -xOf "${WDS_SHARDS[0]}" "$STEM.fits") || die "wds: $FIRST differs"
cmp -s "${ETD_ZSTD_SHARDS[0]}" "${ETD_RUN_SHARDS[0]}" || die "etd-run and etd-zstd wrote different shards"
echo "output: $FIRST is byte-identical to its input in all six pass-through archives" | tee -a "$RES_DIR/outputs.txt"
# The npy routes: the first sample's array from etd and from astropy holds the same float32 values.
"$PY" - "$DATA/$FIRST" "${ETD_NPY_SHARDS[0]}" "${PYNPY_SHARDS[0]}" "$STEM.npy" <<'EOF' | tee -a "$RES_DIR/outputs.txt" || die "npy check failed"
import io, sys, tarfile
import numpy as np
from astropy.io import fits
src, etd_tar, py_tar, member = sys.argv[1:]
want = np.nan_to_num(np.asarray(fits.getdata(src), dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
for label, path in (("etd-npy", etd_tar), ("py-npy", py_tar)):
    with tarfile.open(path) as t:
        arr = np.load(io.BytesIO(t.extractfile(member).read()))
    assert arr.dtype == np.dtype("<f4") and arr.shape == want.shape, (label, arr.dtype, arr.shape)
    assert np.array_equal(arr, want), f"{label}: pixels differ from astropy's"
print(f"output: {member} holds astropy's float32 pixels (NaN -> 0) in etd-npy and py-npy")
EOF
# sha256 of etd's shards: byte-identity across etd versions is checked by comparing these files.
(cd "$WORK/etd" && sha256sum "n${N}_none/shards/"*.tar "n${N}_zstd/shards/"*.tar.zst "n${N}_npy/shards/"*.tar) >"$RES_DIR/shards.sha256"

# ---------------------------------------------------------------------------------------------
# Memory flatness: etd zstd at 4N
N4=$((4 * N))
if [[ ${BENCH_SKIP_4N:-0} != 1 ]]; then
    DATA4=$(make_data "$N4")
    BYTES4=$(input_bytes "$DATA4")
    write_recipe "$N4" zstd >/dev/null
    log "warm-up: reading the $N4 input files"
    warm_cache "$DATA4"
    log "etd fetch + zstd shard on 4N = $N4 files, $REPS runs"
    for rep in $(seq 1 "$REPS"); do etd_fetch_timed "$N4" zstd "$rep"; done
    for rep in $(seq 1 "$REPS"); do etd_shard "$N4" zstd "$rep"; done
fi

# ---------------------------------------------------------------------------------------------
# Report
echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) at end" | tee -a "$RES_DIR/machine.txt"
"$PY" "$HERE/report.py" "$RESULTS" "$N" "$BYTES" "$N4" "$BYTES4" "$THREADS" | tee "$RES_DIR/report.txt"
echo "(all runs: $RESULTS)"
