#!/usr/bin/env python3
"""Python FITS -> npy route of the etd shard benchmark (what `etd shard` with `outputs: [npy]`,
`nan: zero`, `scale: none` replaces): every FITS file is decoded with astropy.io.fits, turned
into a native float32 array with NaN (and +-inf) set to 0, and written with
webdataset.ShardWriter as {"__key__": stem, "npy": array} (webdataset's own .npy encoder), in
sorted file-name order, maxcount=10000 per plain .tar shard. After the writer is closed every
shard is fsync'ed, because etd fsyncs its shards too.

Usage: astropy_npy_shard.py DATA_DIR OUT_DIR [--maxcount M] [--no-fsync]
"""

import argparse
import os

import numpy as np
import webdataset as wds
from astropy.io import fits


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
            with fits.open(os.path.join(args.data, name), memmap=False) as hdul:
                # BSCALE/BZERO applied by astropy; big-endian >f4 -> native float32.
                img = np.asarray(hdul[0].data, dtype=np.float32)
            img = np.nan_to_num(img, nan=0.0, posinf=0.0, neginf=0.0)
            sink.write({"__key__": name[: -len(".fits")], "npy": img})
    if not args.no_fsync:
        for f in sorted(os.listdir(args.out)):
            fd = os.open(os.path.join(args.out, f), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


if __name__ == "__main__":
    main()
