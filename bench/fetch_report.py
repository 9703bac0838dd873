#!/usr/bin/env python3
"""Report for bench/fetch_bench.sh: reads runs.tsv and the emulator's meter files, prints the
throughput table (medians over repetitions), the etd/python ratios and the rate-accuracy check.

Usage: fetch_report.py RUNS_TSV N_TARGETS FILTERS RATE_TARGETS RATE_LIMIT
runs.tsv columns (tab-separated, no header):
  label latency_ms rep exit wall_s user_s sys_s srv_user_s srv_sys_s files expected_files meter_json
label is `etd`, `python`, `etd-free` (etd with a rate limit that never binds) or `curl` (curl fetching
etd's URLs to /dev/null) for the throughput runs, or `etd-rate` (the rate-accuracy run).
"""

import json
import statistics
import sys


def load(path):
    runs = []
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            c = line.rstrip("\n").split("\t")
            with open(c[11]) as m:
                meter = json.load(m)
            runs.append(
                {
                    "label": c[0],
                    "lat": int(c[1]),
                    "rep": int(c[2]),
                    "exit": int(c[3]),
                    "wall": float(c[4]),
                    "cpu": float(c[5]) + float(c[6]),
                    "user": float(c[5]),
                    "sys": float(c[6]),
                    "srv_cpu": float(c[7]) + float(c[8]),
                    "files": int(c[9]),
                    "expected": int(c[10]),
                    "meter": meter,
                }
            )
    return runs


def non200(meter):
    return sum(n for status, n in meter["status_counts"].items() if str(status) != "200")


def max_in_window(arrivals, width_ms=1000.0):
    """Max arrivals with t_last - t_first < width (the same rule as the emulator's meter)."""
    best, lo = 0, 0
    for hi in range(len(arrivals)):
        while arrivals[hi] - arrivals[lo] >= width_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def floor(path, runs, med):
    """The kernel CPU of storing the same files as durably as etd, per request of the 0 ms runs."""
    if not path:
        return
    rows = [dict(zip(line.split()[::2], line.split()[1::2])) for line in open(path) if line.strip()]
    etd0 = [r for r in runs if r["label"] == "etd" and r["lat"] == 0]
    if not rows or not etd0:
        return
    requests = etd0[0]["meter"]["requests"]
    kernel = med([float(r["kernel_s"]) for r in rows])
    per = 1000 * kernel / requests
    sys_ms = med([1000 * r["sys"] / r["meter"]["requests"] for r in etd0])
    user_ms = med([1000 * r["user"] / r["meter"]["requests"] for r in etd0])
    print(f"storage replay: etd's {rows[0]['files']} files stored again as durably (per target: folder made, "
          f"files to temp files; per 16 targets: each file fsynced, renamed, each folder and the parent fsynced "
          f"once), no HTTP: kernel CPU "
          f"{kernel:.2f} s = {per:.3f} ms per request")
    print(f"  etd at 0 ms: user {user_ms:.3f} ms + kernel {sys_ms:.3f} ms per request (HTTP and storage)")
    curl0 = [r for r in runs if r["label"] == "curl" and r["lat"] == 0]
    if curl0:
        http = med([1000 * r["cpu"] / r["meter"]["requests"] for r in curl0])
        total = per + http
        verdict = "within reach" if total <= 0.3 else "OUT OF REACH on this machine"
        print(f"  floor = storage replay {per:.3f} + curl's CPU per request {http:.3f} (the same URLs, 10 in flight, "
              f"to /dev/null) = {total:.3f} ms  (target <= 0.3 ms: {verdict})")


def main():
    runs_tsv, n_targets, filters, rate_targets, rate_limit = sys.argv[1:6]
    floor_txt = sys.argv[6] if len(sys.argv) > 6 else None
    rate_limit = float(rate_limit)
    runs = load(runs_tsv)
    med = statistics.median

    print(f"throughput: {n_targets} targets x {len(filters)} filters ({', '.join(filters)}), 64x64 FITS cutouts, "
          f"10 requests in flight; median of each column over the runs")
    hdr = (f"{'tool':<9}{'lat ms':>5}{'exit':>6}{'files':>11}{'requests':>9}{'non-200':>8}{'wall s':>8}"
           f"{'req/s':>8}{'CPU s':>7}{'CPU ms/req':>11}{'peak infl':>10}{'srv CPU s':>10}  wall of each run (s)")
    print(hdr)
    print("-" * len(hdr))
    summary = {}
    lats = sorted({r["lat"] for r in runs if r["label"] != "etd-rate"}, reverse=True)
    for lat in lats:
        for label in ("etd", "python", "etd-free", "curl"):
            rs = [r for r in runs if r["label"] == label and r["lat"] == lat]
            if not rs:
                continue
            reqs = [r["meter"]["requests"] for r in rs]
            rps = med([r["meter"]["requests"] / r["wall"] for r in rs])
            cpu = med([r["cpu"] for r in rs])
            cpu_ms = med([1000 * r["cpu"] / r["meter"]["requests"] for r in rs])
            exits = sorted({r["exit"] for r in rs})
            files = min(r["files"] for r in rs)
            req_txt = str(reqs[0]) if len(set(reqs)) == 1 else f"{min(reqs)}-{max(reqs)}"
            files_txt = f"{files}/{rs[0]['expected']}" if label != "curl" else "-"
            summary[(label, lat)] = (rps, cpu_ms)
            print(
                f"{label:<9}{lat:>5}{','.join(map(str, exits)):>6}{files_txt:>11}"
                f"{req_txt:>9}{max(non200(r['meter']) for r in rs):>8}{med([r['wall'] for r in rs]):>8.2f}"
                f"{rps:>8.1f}{cpu:>7.2f}{cpu_ms:>11.3f}{max(r['meter']['peak_inflight'] for r in rs):>10}"
                f"{med([r['srv_cpu'] for r in rs]):>10.2f}  " + " ".join(f"{r['wall']:.2f}" for r in rs)
            )
    print()
    for lat in lats:
        if ("etd", lat) in summary and ("python", lat) in summary:
            (e_rps, e_cpu), (p_rps, p_cpu) = summary[("etd", lat)], summary[("python", lat)]
            print(f"latency {lat:>3} ms: etd req/s / python req/s = {e_rps:.1f} / {p_rps:.1f} = {e_rps / p_rps:.2f}x;  "
                  f"python CPU/req / etd CPU/req = {p_cpu:.3f} / {e_cpu:.3f} ms = {p_cpu / e_cpu:.2f}x")
    for lat in lats:
        if ("etd", lat) in summary:
            e_cpu = summary[("etd", lat)][1]
            print(f"etd CPU per request at latency {lat:>3} ms = {e_cpu:.3f} ms  "
                  f"(target <= 0.3 ms: {'MEETS' if e_cpu <= 0.3 else 'MISSES'} target)")
        if ("etd-free", lat) in summary:
            print(f"  (rate limit 1000/s lifted: {summary[('etd-free', lat)][1]:.3f} ms per request; the difference is "
                  f"the pacing: a timer wake-up for each start the limiter holds back)")
    floor(floor_txt, runs, med)

    rate_runs = [r for r in runs if r["label"] == "etd-rate"]
    for r in rate_runs:
        m = r["meter"]
        a = sorted(m["arrivals_ms"])
        n = len(a)
        span_s = (a[-1] - a[0]) / 1000
        achieved = (n - 1) / span_s
        dev = 100 * (achieved - rate_limit) / rate_limit
        win = max_in_window(a)
        gaps = [b - x for x, b in zip(a, a[1:])]
        limit_1s = int(rate_limit) + 1
        ok_rate = abs(dev) <= 2.0
        ok_burst = win <= limit_1s and m["max_starts_in_any_1s"] <= limit_1s
        ok = ok_rate and ok_burst and r["exit"] == 0 and non200(m) == 0
        print()
        print(f"rate accuracy: etd, politeness {{concurrency: 10, rate: {rate_limit:g}/s}}, {rate_targets} targets x 1 "
              f"filter, latency {r['lat']} ms")
        print(f"  exit {r['exit']}, files {r['files']}/{r['expected']}, requests {m['requests']} "
              f"(non-200: {non200(m)}), wall {r['wall']:.2f} s, CPU {r['cpu']:.2f} s "
              f"({1000 * r['cpu'] / m['requests']:.3f} ms per request), peak in flight {m['peak_inflight']}")
        print(f"  arrivals: first {a[0] / 1000:.3f} s, last {a[-1] / 1000:.3f} s after emulator start; "
              f"achieved rate (n-1)/(t_last-t_first) = {n - 1}/{span_s:.3f} s = {achieved:.3f}/s; "
              f"deviation from {rate_limit:g}/s: {dev:+.2f}%")
        print(f"  gaps between starts: min {min(gaps):.1f} ms, median {med(gaps):.1f} ms, max {max(gaps):.1f} ms; "
              f"max starts in any 1 s: {win} (meter: {m['max_starts_in_any_1s']})")
        print(f"  achieved rate within 1% of the allowed {rate_limit:g}/s: {dev:+.2f}%  "
              f"(target: {'MEETS' if abs(dev) <= 1.0 else 'MISSES'} target)")
        print(f"  {'PASS' if ok else 'FAIL'}: within 2% of {rate_limit:g}/s: {'yes' if ok_rate else 'no'} "
              f"({dev:+.2f}%); no burst above the limit (<= {limit_1s} starts in any 1 s): "
              f"{'yes' if ok_burst else 'no'} ({max(win, m['max_starts_in_any_1s'])})")


if __name__ == "__main__":
    main()
