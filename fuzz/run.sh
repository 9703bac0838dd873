#!/usr/bin/env bash
# The long fuzz campaign: build the libFuzzer targets with cargo-fuzz and run each one for
# ETD_FUZZ_RUNS inputs (default 1,000,000) or ETD_FUZZ_MAX_TIME seconds (default 600), whichever
# comes first, one target at a time, at low priority. Usage: fuzz/run.sh [target ...] (default:
# every target). Needs `cargo install cargo-fuzz`; works on the stable toolchain through
# RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly-only flags). See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")"
fuzz_dir=$(pwd)
runs=${ETD_FUZZ_RUNS:-1000000}
max_time=${ETD_FUZZ_MAX_TIME:-600}
rss_mb=${ETD_FUZZ_RSS_MB:-2048}
timeout_s=${ETD_FUZZ_TIMEOUT:-10}
max_len=${ETD_FUZZ_MAX_LEN:-65536}
# Two campaigns at once (one per core) each keep their own table: ETD_FUZZ_SUMMARY=logs/b.txt.
summary=${ETD_FUZZ_SUMMARY:-logs/summary.txt}
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$fuzz_dir/target"
flags=(-s none -a)  # no sanitizer (the targets are safe Rust over cfitsio), debug assertions on

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2; exit 2; }

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cargo fuzz list)
fi

echo "== build"
nice -n 19 cargo fuzz build "${flags[@]}"

echo "== seeds (written by fuzz/src/entries.rs; real fixtures read from \$ETD_FIXTURES or ../shared/fixtures)"
# Kept from an earlier run unless ETD_FUZZ_RESEED=1. Written by the normal test build, without
# RUSTC_BOOTSTRAP (which would make cargo rebuild that build from scratch).
mkdir -p corpus artifacts logs
if [ -n "${ETD_FUZZ_RESEED:-}" ] || [ -z "$(ls -A seeds 2>/dev/null)" ]; then
  rm -rf seeds && mkdir -p seeds
  (cd .. && env -u RUSTC_BOOTSTRAP ETD_FUZZ_CORPUS="$fuzz_dir/seeds" CARGO_TARGET_DIR="${ETD_TEST_TARGET_DIR:-target}" \
    nice -n 19 cargo test --locked --test tests fuzz::write_seed_corpus -- --ignored --quiet >/dev/null)
fi

status=0
printf '%-20s %12s %8s %10s %s\n' target inputs seconds peak_rss result > "$summary"
for t in "${targets[@]}"; do
  echo "== $t"
  mkdir -p "corpus/$t" "artifacts/$t"
  start=$(date +%s)
  set +e
  nice -n 19 cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
    -runs="$runs" -max_total_time="$max_time" -rss_limit_mb="$rss_mb" -timeout="$timeout_s" \
    -max_len="$max_len" -print_final_stats=1 -artifact_prefix="artifacts/$t/" >"logs/$t.log" 2>&1
  rc=$?
  set -e
  # libFuzzer's own seconds (`Done N runs in S second(s)`): without the build `cargo fuzz run`
  # does first when the sources changed; the wall time when it did not get that far.
  secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "logs/$t.log" | grep -o '[0-9]* second' | grep -o '[0-9]*' | tail -1)
  secs=${secs:-$(($(date +%s) - start))}
  inputs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  rss=$(grep -o 'stat::peak_rss_mb: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -1)
  result=ok
  if ((rc != 0)); then result="FAILED (exit $rc; see fuzz/logs/$t.log and fuzz/artifacts/$t/)"; status=1; fi
  printf '%-20s %12s %8s %10s %s\n' "$t" "${inputs:-?}" "$secs" "${rss:-?}MB" "$result" | tee -a "$summary"
done
cat "$summary"
exit $status
