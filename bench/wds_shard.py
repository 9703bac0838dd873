#!/usr/bin/env python3
"""Baseline (d) of the etd shard benchmark: pack the same FITS files with webdataset.ShardWriter.

Each file becomes one sample {"__key__": stem, "fits": <file bytes>} (bytes pass through the
encoder untouched), in sorted file-name order, maxcount=10000 per shard, uncompressed .tar.
After the writer is closed every shard is fsync'ed, because etd fsyncs its shards too.

Usage: wds_shard.py DATA_DIR OUT_DIR [--no-fsync]
"""

import argparse
import os

import webdataset as wds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("data")
    ap.add_argument("out")
    ap.add_argument("--maxcount", type=int, default=10000)
    ap.add_argument("--no-fsync", action="store_true")
    args = ap.parse_args()

    names = sorted(f for f in os.listdir(args.data) if f.endswith(".fits"))
    os.makedirs(args.out, exist_ok=True)
    pattern = os.path.join(args.out, "bench-%06d.tar")
    with wds.ShardWriter(pattern, maxcount=args.maxcount, verbose=0) as sink:
        for name in names:
            with open(os.path.join(args.data, name), "rb") as fh:
                data = fh.read()
            sink.write({"__key__": name[: -len(".fits")], "fits": data})
    if not args.no_fsync:
        for f in sorted(os.listdir(args.out)):
            fd = os.open(os.path.join(args.out, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


if __name__ == "__main__":
    main()
