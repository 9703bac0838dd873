#!/usr/bin/env python3
"""The PS1 bulk download a user would otherwise write: the baseline of bench/fetch_bench.sh.

Modelled on MAST's own PS1 cutout examples (``getimages`` / ``geturl`` in "PS1 image cutout
service", ps1images.stsci.edu/ps1image.html): per target, ``requests.get`` of ps1filenames.py,
parse the returned table, then one ``requests.get`` of fitscut.cgi per filter, and write each
answer to disk. MAST reads the table with ``astropy.table.Table.read(url, format="ascii")``; here a
plain ``str.split`` is used so the baseline is not slowed by astropy. Targets run on a
``ThreadPoolExecutor(max_workers=10)`` (MAST's limit of 10 simultaneous requests) with one
``requests.Session`` per thread (connection reuse). Nothing else: no rate limit, no retries,
no validation of the FITS bytes, no fsync, no journal. That is what users typically run.

Usage: ps1_bulk_client.py BASE_URL TARGETS_CSV OUT_DIR [--filters gri] [--size 64] [--workers 10]
TARGETS_CSV has a header row with columns id, ra, dec. Files go to OUT_DIR/<id>/<filter>.fits.
Exit status 0 when every target got every filter, 1 otherwise.
"""

import argparse
import concurrent.futures
import csv
import os
import sys
import threading

import requests

_local = threading.local()


def session():
    s = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


def getimages(base, ra, dec, filters="grizy"):
    """Query ps1filenames.py for the stack images covering (ra, dec); one dict per row."""
    url = f"{base}/cgi-bin/ps1filenames.py?ra={ra}&dec={dec}&filters={filters}&type=stack"
    r = session().get(url)
    r.raise_for_status()
    lines = r.text.splitlines()
    header = lines[0].split()
    return [dict(zip(header, line.split())) for line in lines[1:] if line.strip()]


def fetch_target(base, target, out_dir, filters, size):
    """Download every filter of one target; returns the number of files written."""
    tid, ra, dec = target["id"], target["ra"], target["dec"]
    table = getimages(base, ra, dec, filters=filters)
    if not table:
        raise RuntimeError(f"{tid}: no PS1 coverage at ra={ra} dec={dec}")
    url = f"{base}/cgi-bin/fitscut.cgi?ra={ra}&dec={dec}&size={size}&format=fits"
    dest = os.path.join(out_dir, tid)
    os.makedirs(dest, exist_ok=True)
    n = 0
    for row in table:
        r = session().get(url + "&red=" + row["filename"])
        r.raise_for_status()
        with open(os.path.join(dest, row["filter"] + ".fits"), "wb") as f:
            f.write(r.content)
        n += 1
    if n != len(filters):
        raise RuntimeError(f"{tid}: got {n} of {len(filters)} filters")
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base_url")
    ap.add_argument("targets_csv")
    ap.add_argument("out_dir")
    ap.add_argument("--filters", default="gri")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--workers", type=int, default=10)
    args = ap.parse_args()
    base = args.base_url.rstrip("/")
    with open(args.targets_csv, newline="") as f:
        targets = list(csv.DictReader(f))
    os.makedirs(args.out_dir, exist_ok=True)

    files = 0
    errors = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.workers) as pool:
        futures = [pool.submit(fetch_target, base, t, args.out_dir, args.filters, args.size) for t in targets]
        for fut in concurrent.futures.as_completed(futures):
            try:
                files += fut.result()
            except Exception as e:  # a user's script would just print and go on
                errors.append(str(e))
    for e in errors[:5]:
        print(f"ps1_bulk_client: error: {e}", file=sys.stderr)
    print(f"ps1_bulk_client: {len(targets)} targets, {files} files, {len(errors)} failed targets", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
