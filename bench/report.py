#!/usr/bin/env python3
"""Summarise the runs recorded by shard_bench.sh: medians, table, ratios against the targets.

Usage: report.py RUNS_TSV N INPUT_BYTES N4 INPUT_BYTES_4N [THREADS]
RUNS_TSV lines: label, n, rep, wall_s, peak_rss_kib, user_s, sys_s, input_cached_pct (tab separated).
"""

import statistics as st
import sys


def main():
    path, n, nbytes, n4, nbytes4 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    threads = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    runs = {}
    for line in open(path):
        label, rn, _rep, wall, rss, user, sys_, cached = line.rstrip("\n").split("\t")
        cached = float(cached) if cached != "NA" else float("nan")
        runs.setdefault((label, int(rn)), []).append(
            (float(wall), int(rss), float(user) + float(sys_), cached, float(user)))

    def med(label, rn, i):
        v = runs.get((label, rn))
        return st.median(x[i] for x in v) if v else None

    rows = [
        ("etd-fetch", n, "etd fetch: hash inputs (separate step, not in shard)"),
        ("etd-none", n, "etd shard, compression: none, pass-through fits"),
        ("tar-plain", n, "tar --sort=name -cf; sync"),
        ("etd-zstd", n, "etd shard, compression: zstd level 3"),
        ("tar-zstd", n, "tar --sort=name | zstd -3 -T<threads>; sync"),
        ("etd-run", n, "etd run (fetch + shard zstd) from an empty workdir"),
        ("wds-shardw", n, "webdataset.ShardWriter, plain .tar; fsync"),
        ("etd-npy", n, "etd shard, fits -> npy (nan zero, no scaling), plain .tar"),
        ("py-npy", n, "astropy -> float32 npy (NaN -> 0) -> ShardWriter; fsync"),
        ("zstd-alone", n, "floor: zstd -3 -T<threads> of tar-plain's archive, to /dev/null"),
        ("sha256-in", n, "floor: openssl sha256 of every input file"),
        ("digest-zstd", n, "floor: openssl sha256 of etd's .tar.zst shards"),
        ("digest-none", n, "floor: openssl sha256 of etd's .tar shards"),
        ("etd-fetch", n4, "etd fetch at 4N"),
        ("etd-zstd", n4, "etd shard zstd level 3 at 4N"),
    ]
    print()
    print(f"{'tool':<10} {'files':>6} {'wall s':>7} {'MB/s':>7} {'CPU s':>6} {'RSS MB':>7} {'cached':>6}  {'wall of each run (s)':<30} what")
    print("-" * 125)
    for label, rn, what in rows:
        if (label, rn) not in runs:
            continue
        wall, rss, cpu = med(label, rn, 0), med(label, rn, 1) / 1024, med(label, rn, 2)
        b = nbytes if rn == n else nbytes4
        mbs = b / 1e6 / wall if wall > 0 else float("inf")
        each = " ".join(f"{x[0]:.2f}" for x in runs[(label, rn)])
        cached = min(x[3] for x in runs[(label, rn)])
        print(f"{label:<10} {rn:>6} {wall:>7.2f} {mbs:>7.1f} {cpu:>6.2f} {rss:>7.1f} {cached:>5.1f}%  {each:<30} {what}")
    print("medians over runs; MB/s = input FITS bytes (1 MB = 1e6 B) / wall; CPU = user + sys;")
    print("RSS MB = peak resident set in MiB (tar-zstd: tar + zstd peaks added);")
    print("cached = lowest share of the input's pages in the page cache at the start of a run (fincore)")
    print()

    def verdict(ok):
        return "MEETS target" if ok else "MISSES target"

    ez, en = med("etd-zstd", n, 0), med("etd-none", n, 0)
    tz, ws = med("tar-zstd", n, 0), med("wds-shardw", n, 0)
    tp, er = med("tar-plain", n, 0), med("etd-run", n, 0)
    enp, pnp = med("etd-npy", n, 0), med("py-npy", n, 0)

    def ratio(what, a, b, op, goal):
        if a is None or b is None:
            print(f"{what:<34} = (not measured)")
            return
        r = a / b
        ok = r <= goal if op == "<=" else r >= goal
        print(f"{what:<34} = {a:.2f} / {b:.2f} = {r:.2f}  (target {op} {goal}: {verdict(ok)})")

    ratio("etd-zstd time / tar|zstd time", ez, tz, "<=", 1.0)
    ratio("etd-none time / tar time", en, tp, "<=", 1.1)
    ratio("etd-run time / tar|zstd time", er, tz, "<=", 1.25)
    ratio("py-npy time / etd-npy time", pnp, enp, ">=", 10)
    floors(runs, med, n, threads, tz, tp)
    if ws is not None and ez is not None and en is not None:
        print(f"  (reference, no target: ShardWriter / etd-zstd = {ws:.2f} / {ez:.2f} = {ws / ez:.2f};"
              f" ShardWriter / etd-none = {ws / en:.2f})")
    rss_n = med("etd-zstd", n, 1) / 1024
    rss_none = med("etd-none", n, 1) / 1024
    others = [(lbl, med(lbl, n, 1) / 1024) for lbl in ("etd-npy", "etd-run") if (lbl, n) in runs]
    rss_all = [rss_n, rss_none] + [r for _, r in others]
    more = "".join(f", {lbl[4:]} {r:.1f} MB" for lbl, r in others)
    print(f"etd shard peak RSS at N={n}: zstd {rss_n:.1f} MB, none {rss_none:.1f} MB{more}"
          f"  (target < 200 MB: {verdict(max(rss_all) < 200)})")
    if ("etd-zstd", n4) in runs:
        rss_4 = med("etd-zstd", n4, 1) / 1024
        r4 = rss_4 / rss_n
        slope = (rss_4 - rss_n) * 1024 / (n4 - n)
        print(f"etd shard zstd peak RSS at 4N={n4}: {rss_4:.1f} MB  (< 200 MB: {verdict(rss_4 < 200)})")
        print(f"RSS(4N)/RSS(N) = {rss_4:.1f} / {rss_n:.1f} = {r4:.2f}"
              f"  (target ~1, counted as met if <= 1.25: {verdict(r4 <= 1.25)}); {slope:.2f} KiB more per extra file")
        t4 = med("etd-zstd", n4, 0)
        print(f"etd-zstd time(4N)/time(N) = {t4:.2f} / {ez:.2f} = {t4 / ez:.2f}  (4.0 = linear)")


def floors(runs, med, n, threads, tz, tp):
    """Lower bounds of the etd routes on this machine: the CPU of the work etd cannot skip, each
    part timed alone with the fastest tool at hand, spread perfectly over the threads. Counted:
    zstd's own compression (user CPU of zstd on the same tar), the kernel's opening and reading of
    every input (the system CPU of openssl over the inputs), sha256 of every shard (user CPU of
    openssl over etd's shards; md5 too before it became `shard.md5`, off by default), and for `etd run` the sha256 of every input (fetch records it;
    `shard` does not hash an input again while its size and times are as recorded, as here). Not
    counted: writing the output, tar framing, fsync, thread hand-offs, so the real floor is
    higher. (Until etd wrote shards around the page cache, the plain route's floor counted tar's
    whole CPU, page-cache writes included; etd does not pay those now.)"""
    need = ("zstd-alone", "sha256-in", "digest-zstd", "digest-none")
    if any((lbl, n) not in runs for lbl in need) or tz is None or tp is None:
        return
    z, si, dz, dn = (med(lbl, n, 4) for lbl in need)
    reads = med("sha256-in", n, 2) - si
    tar_cpu = med("tar-plain", n, 2)
    print(f"floor (CPU s; {threads} threads): zstd {z:.2f} user, sha256 of inputs {si:.2f} user + {reads:.2f} kernel "
          f"(open + read), sha256 of the zstd shards {dz:.2f}, of the plain shards {dn:.2f} user; "
          f"(tar -cf {tar_cpu:.2f} user + kernel)")
    rows = [
        ("etd-zstd", (z + reads + dz) / threads, tz, 1.0, "tar|zstd", "zstd + reads + digests(shards)"),
        ("etd-none", (reads + dn) / threads, tp, 1.1, "tar", "reads + digests(shards)"),
        ("etd-run", (z + si + reads + dz) / threads, tz, 1.25, "tar|zstd",
         "zstd + sha256(inputs) once + reads + digests(shards)"),
    ]
    for label, floor, base, goal, base_name, what in rows:
        r = floor / base
        reach = "within reach" if r <= goal else "OUT OF REACH on this machine"
        print(f"  {label} floor = ({what}) / {threads} = {floor:.2f} s = {r:.2f}x {base_name}"
              f"  (target <= {goal}: {reach})")


if __name__ == "__main__":
    main()
