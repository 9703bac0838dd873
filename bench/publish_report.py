#!/usr/bin/env python3
"""Report for bench/publish_bench.sh: reads runs.tsv, prints the table (medians over rounds) and
the wall-time ratios of the baselines to etd.

Usage: publish_report.py RUNS_TSV BYTES OBJECTS
  BYTES    bytes each contender copies (the shards plus manifest.json)
  OBJECTS  number of files copied (shards plus manifest.json)
runs.tsv columns (tab-separated, no header):
  label rep exit wall_s user_s sys_s cached_pct
"""

import statistics
import sys

ORDER = ["etd", "cp+sha256sum", "cp+sync+sha256sum"]
WHAT = {
    "etd": "etd publish (copy, sha256+crc32c (+md5 if listed), check, fsync each file + folder)",
    "cp+sha256sum": "cp; sha256sum of the copies; check against manifest",
    "cp+sync+sha256sum": "cp; sync (fsync copies + folder); sha256sum; check",
}


def main():
    path, nbytes, objects = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    runs = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            c = line.rstrip("\n").split("\t")
            runs.setdefault(c[0], []).append(
                {
                    "rep": int(c[1]),
                    "exit": int(c[2]),
                    "wall": float(c[3]),
                    "user": float(c[4]),
                    "sys": float(c[5]),
                    "cached": c[6],
                }
            )
    print(f"data: {objects} files, {nbytes} bytes ({nbytes / 1e9:.3f} GB); medians over successful rounds; GB/s = bytes / wall")
    head = f"{'contender':<18} {'fails':>5} {'wall s':>7} {'GB/s':>6} {'CPU s':>6} {'user':>6} {'sys':>6} {'cached':>7}  wall of each run (s)"
    print(head)
    print("-" * len(head))
    med = {}
    for label in ORDER:
        all_rs = runs.get(label, [])
        rs = [r for r in all_rs if r["exit"] == 0]
        fails = len(all_rs) - len(rs)
        if not rs:
            if all_rs:
                print(f"{label:<18} {fails:>5}  (every run failed)")
            continue
        wall = statistics.median(r["wall"] for r in rs)
        user = statistics.median(r["user"] for r in rs)
        sys_ = statistics.median(r["sys"] for r in rs)
        cpu = statistics.median(r["user"] + r["sys"] for r in rs)
        cached = max(float(r["cached"]) for r in rs) if all(r["cached"] != "NA" for r in rs) else "NA"
        cached = f"{cached:.1f}%" if cached != "NA" else "NA"
        each = " ".join(
            f"{r['wall']:.2f}" if r["exit"] == 0 else "fail" for r in sorted(all_rs, key=lambda r: r["rep"])
        )
        med[label] = wall
        print(
            f"{label:<18} {fails:>5} {wall:>7.2f} {nbytes / 1e9 / wall:>6.3f} {cpu:>6.2f} {user:>6.2f} {sys_:>6.2f} {cached:>7}  {each}"
        )
    print("(cached: the highest share of the shards' pages resident in the page cache at the start of a run)")
    for label in ORDER:
        if label in runs:
            print(f"  {label:<18} {WHAT[label]}")
    print()
    if "etd" not in med:
        print("no etd runs")
        return
    e = med["etd"]
    for label, note in [
        ("cp+sha256sum", "target: >= 1.0 (etd at least as fast)"),
        ("cp+sync+sha256sum", "same durability as etd"),
    ]:
        if label in med:
            r = med[label] / e
            verdict = "PASS" if r >= 1.0 else "MISS"
            print(f"ratio {label} wall / etd wall = {med[label]:.2f} / {e:.2f} = {r:.2f}  {verdict}  ({note})")
    if any(r["exit"] != 0 for rs in runs.values() for r in rs):
        print("WARNING: some runs failed (fails column); they are left out of the medians")


if __name__ == "__main__":
    main()
