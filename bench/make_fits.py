#!/usr/bin/env python3
"""Generate N deterministic synthetic FITS files for the etd shard benchmark.

Each file is a single primary HDU holding a 64x64 float32 image (BITPIX=-32, big-endian), written
by hand as a valid FITS file: one 2880-byte header block (SIMPLE/BITPIX/NAXIS/NAXIS1/NAXIS2/...,
END, space padded) followed by the data padded with zeros to a multiple of 2880 bytes.
64*64*4 = 16384 data bytes -> 6 blocks, so every file is 2880 + 17280 = 20160 bytes.

Pixel values: Gaussian sky noise plus one Gaussian "source" blob whose position, width and
amplitude are drawn from a generator seeded by (seed, index), so file i is the same on every run
and every machine (numpy's PCG64 stream is stable across versions for these calls).

Usage: make_fits.py OUT_DIR N [--seed S] [--check K]
  Writes OUT_DIR/img_000000.fits ... and, when done, OUT_DIR.done recording (N, seed); if that
  marker already matches, nothing is rewritten. --check K re-reads K files with astropy.io.fits
  (if installed) and compares the pixels with what was generated.
"""

import argparse
import os
import sys

import numpy as np

BLOCK = 2880
SIDE = 64


def card(key, value, comment=""):
    """One 80-char fixed-format header card."""
    if isinstance(value, bool):
        v = "T" if value else "F"
        text = f"{key:<8}= {v:>20}"
    elif isinstance(value, (int, np.integer)):
        text = f"{key:<8}= {int(value):>20}"
    elif isinstance(value, float):
        text = f"{key:<8}= {value:>20.10E}"
    else:  # string
        s = "'" + str(value).replace("'", "''").ljust(8) + "'"
        text = f"{key:<8}= {s:<20}"
    if comment:
        text += " / " + comment
    if len(text) > 80:
        raise ValueError(f"card too long: {text!r}")
    return text.ljust(80).encode("ascii")


def header_bytes(index, seed, x0, y0, sigma, amp):
    cards = [
        card("SIMPLE", True, "conforms to FITS standard"),
        card("BITPIX", -32, "32-bit IEEE float"),
        card("NAXIS", 2),
        card("NAXIS1", SIDE),
        card("NAXIS2", SIDE),
        card("OBJECT", f"synth{index:06d}"),
        card("BENCHSD", int(seed), "generator seed"),
        card("BENCHIDX", int(index), "file index"),
        card("BLOBX", float(x0), "blob centre x (0-based px)"),
        card("BLOBY", float(y0), "blob centre y (0-based px)"),
        card("BLOBSIG", float(sigma), "blob sigma (px)"),
        card("BLOBAMP", float(amp), "blob peak amplitude"),
        b"END".ljust(80),
    ]
    raw = b"".join(cards)
    return raw + b" " * (-len(raw) % BLOCK)


_yy, _xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)


def make_image(index, seed):
    rng = np.random.default_rng([seed, index])
    noise = rng.normal(100.0, 5.0, size=(SIDE, SIDE)).astype(np.float32)
    x0, y0 = rng.uniform(8, SIDE - 8, size=2)
    sigma = float(rng.uniform(1.5, 4.0))
    amp = float(rng.uniform(50.0, 500.0))
    blob = amp * np.exp(-((_xx - x0) ** 2 + (_yy - y0) ** 2) / (2 * sigma * sigma))
    img = (noise + blob).astype(np.float32)
    return img, (float(x0), float(y0), sigma, amp)


def fits_bytes(index, seed):
    img, params = make_image(index, seed)
    data = img.astype(">f4").tobytes()
    data += b"\0" * (-len(data) % BLOCK)
    return header_bytes(index, seed, *params) + data, img


def name_of(index):
    return f"img_{index:06d}.fits"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=20240607)
    ap.add_argument("--check", type=int, default=0, help="verify K files with astropy afterwards")
    args = ap.parse_args()

    out = os.path.abspath(args.out)
    marker = out.rstrip("/") + ".done"
    want = f"n={args.n} seed={args.seed} side={SIDE}\n"
    if os.path.exists(marker) and open(marker).read() == want:
        print(f"make_fits: {out} already holds {args.n} files (seed {args.seed})", file=sys.stderr)
    else:
        if os.path.exists(marker):
            os.remove(marker)
        os.makedirs(out, exist_ok=True)
        # Remove files that would not belong to this set (e.g. a larger earlier N).
        expected = {name_of(i) for i in range(args.n)}
        for f in os.listdir(out):
            if f not in expected:
                os.remove(os.path.join(out, f))
        for i in range(args.n):
            blob, _ = fits_bytes(i, args.seed)
            with open(os.path.join(out, name_of(i)), "wb") as fh:
                fh.write(blob)
        with open(marker, "w") as fh:
            fh.write(want)
        print(f"make_fits: wrote {args.n} files to {out}", file=sys.stderr)

    if args.check:
        try:
            from astropy.io import fits
        except ImportError:
            print("make_fits: astropy not installed, skipping --check", file=sys.stderr)
            return
        step = max(1, args.n // args.check)
        checked = 0
        for i in range(0, args.n, step):
            path = os.path.join(out, name_of(i))
            assert os.path.getsize(path) % BLOCK == 0, path
            with fits.open(path, mode="readonly") as hdul:
                hdul.verify("exception")
                h = hdul[0].header
                assert h["SIMPLE"] is True and h["BITPIX"] == -32 and h["NAXIS"] == 2
                assert h["NAXIS1"] == SIDE and h["NAXIS2"] == SIDE
                expected_img, _ = make_image(i, args.seed)
                assert np.array_equal(hdul[0].data, expected_img), path
            checked += 1
        print(f"make_fits: {checked} files verified with astropy", file=sys.stderr)


if __name__ == "__main__":
    main()
