#!/usr/bin/env python3
"""Helpers of bench/atlas_var_bench.sh: compare etd's shards with pandas' .npy files, and
summarise the timed runs.

Usage:
  atlas_var_report.py check CATALOG SHARD_DIR NPY_DIR [--spot K]
      Counts the light curves in etd's shards (.npy members of SHARD_DIR/*.tar) and in NPY_DIR
      (*.npy files), and compares K objects (spread evenly over the catalog's ATO_IDs): the mjd
      column must be identical; the other fields are compared too and reported.
      Exit status 1 if the counts differ or an mjd column differs.
  atlas_var_report.py report RUNS_TSV CSV_BYTES
      RUNS_TSV lines: label, rep, wall_s, peak_rss_kib, user_s, sys_s, cached_pct (tab separated).
"""

import io
import json
import os
import statistics as st
import sys
import tarfile

import numpy as np


def check(catalog, shard_dir, npy_dir, spot):
    from astropy.io import fits

    with fits.open(catalog, memmap=True) as h:
        ids = sorted(np.char.strip(np.asarray(h[1].data["ATO_ID"])).astype(str).tolist())
    picks = [ids[round(i * (len(ids) - 1) / max(spot - 1, 1))] for i in range(spot)] if ids else []
    wanted = set(picks)

    etd_count = 0
    etd_arrays = {}
    want_key = {}
    tars = sorted(f for f in os.listdir(shard_dir) if f.endswith(".tar"))
    for t in tars:
        with tarfile.open(os.path.join(shard_dir, t), mode="r|") as tf:
            for m in tf:
                if not m.isfile():
                    continue
                key, _, field = m.name.partition(".")
                if field == "npy":
                    etd_count += 1
                    if key in want_key:
                        etd_arrays[want_key.pop(key)] = np.load(io.BytesIO(tf.extractfile(m).read()))
                elif field == "json":
                    doc = json.loads(tf.extractfile(m).read())
                    if doc.get("ATO_ID") in wanted:
                        want_key[key] = doc["ATO_ID"]
    npy_count = sum(1 for f in os.listdir(npy_dir) if f.endswith(".npy"))
    ok = True
    print(f"check: light curves: etd {etd_count} (.npy members of {len(tars)} shards), pandas {npy_count} (.npy files), catalog {len(ids)} objects"
          f" -> {'same count' if etd_count == npy_count else 'COUNTS DIFFER'}")
    ok &= etd_count == npy_count
    for aid in picks:
        a = etd_arrays.get(aid)
        path = os.path.join(npy_dir, f"{aid}.npy")
        b = np.load(path) if os.path.exists(path) else None
        if a is None or b is None:
            print(f"check: {aid}: missing in {'etd' if a is None else 'pandas'}")
            ok = False
            continue
        same_mjd = a.shape == b.shape and np.array_equal(a["mjd"], b["mjd"])
        same_all = a.dtype == b.dtype and a.shape == b.shape and all(np.array_equal(a[f], b[f]) for f in a.dtype.names)
        ok &= same_mjd
        print(f"check: {aid}: {len(a)} rows in etd, {len(b)} in pandas; mjd {'identical' if same_mjd else 'DIFFERENT'};"
              f" all six fields {'identical' if same_all else 'differ'} (dtype {'same' if a.dtype == b.dtype else 'differs'})")
    return 0 if ok else 1


def report(runs_tsv, csv_bytes):
    runs = {}
    for line in open(runs_tsv):
        label, _rep, wall, rss, user, sys_, cached = line.rstrip("\n").split("\t")
        runs.setdefault(label, []).append((float(wall), int(rss), float(user) + float(sys_), cached))
    gb = csv_bytes / 1e9
    med = {k: (st.median(r[0] for r in v), max(r[1] for r in v) / 1024, st.median(r[2] for r in v)) for k, v in runs.items()}
    print()
    print(f"{'tool':<7} {'wall s':>7} {'GB/s':>6} {'MB/s':>6} {'CPU s':>6} {'peak RSS MB':>11}  {'wall of each run (s)':<22} {'RSS of each run (MB)':<24} cached")
    for label in ("etd", "pandas"):
        if label not in runs:
            continue
        wall, rss, cpu = med[label]
        each = " ".join(f"{r[0]:.2f}" for r in runs[label])
        each_rss = " ".join(f"{r[1] / 1024:.1f}" for r in runs[label])
        cached = " ".join(f"{r[3]}%" if r[3] != "NA" else "NA" for r in runs[label])
        print(f"{label:<7} {wall:>7.2f} {gb / wall:>6.3f} {gb * 1000 / wall:>6.1f} {cpu:>6.2f} {rss:>11.1f}  {each:<22} {each_rss:<24} {cached}")
    print(f"input: {csv_bytes} CSV bytes ({gb:.3f} GB, 1 GB = 1e9 B); wall and CPU (user + sys) are medians;")
    print("peak RSS is the largest of the runs (MiB); cached = share of the CSV pages resident when each run started")
    if "etd" not in med or "pandas" not in med:
        return 1
    ratio = med["pandas"][0] / med["etd"][0]
    rss = med["etd"][1]
    print()
    print(f"throughput etd / pandas = {gb / med['etd'][0]:.3f} / {gb / med['pandas'][0]:.3f} GB/s = {ratio:.2f}x   "
          f"(target >= 5x, issue 14: {'MEETS' if ratio >= 5 else 'MISSES'} target)")
    print(f"etd peak RSS = {rss:.1f} MB (pandas {med['pandas'][1]:.1f} MB)   (target < 500 MB: {'MEETS' if rss < 500 else 'MISSES'} target)")
    return 0


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "check":
        spot = 5
        if "--spot" in sys.argv:
            spot = int(sys.argv[sys.argv.index("--spot") + 1])
        sys.exit(check(sys.argv[2], sys.argv[3], sys.argv[4], spot))
    if len(sys.argv) == 4 and sys.argv[1] == "report":
        sys.exit(report(sys.argv[2], int(sys.argv[3])))
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
