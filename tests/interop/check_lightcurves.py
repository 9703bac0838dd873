"""Read etd ATLAS light-curve shards with webdataset + numpy and check them against the text.

usage: check_lightcurves.py SHARD_DIR

For every sample: `npy` is a 1-d structured array with the documented fields and dtypes; every
column equals what numpy reads from the sample's own `txt` (the server's original result file,
`###MJD` header), `nan` as NaN and `ujy`/`dujy` as 64-bit integers; the `json` row count agrees.
Prints the filters, exposure units (`01a`, `03a`, ...), NaN rows and largest |uJy| seen.
"""

import io
import json
import sys

import numpy as np

import etd_shards

FIELDS = [
    ("mjd", "<f8"), ("m", "<f4"), ("dm", "<f4"), ("ujy", "<i8"), ("dujy", "<i8"), ("filter", "S1"),
    ("err", "<i4"), ("chi_n", "<f4"), ("ra", "<f8"), ("dec", "<f8"), ("x", "<f4"), ("y", "<f4"),
    ("maj", "<f4"), ("min", "<f4"), ("phi", "<f4"), ("apfit", "<f4"), ("mag5sig", "<f4"), ("sky", "<f4"),
    ("obs", "S20"),
]


def main():
    shard_dir = sys.argv[1]
    manifest = etd_shards.manifest(shard_dir)
    total = rows = nan_rows = 0
    filters, units, biggest = set(), set(), 0
    for sample in etd_shards.samples(shard_dir, manifest):
        total += 1
        key = sample["__key__"]
        arr = np.load(io.BytesIO(sample["npy"]))
        assert arr.dtype == np.dtype(FIELDS), (key, arr.dtype)
        text = sample["txt"].decode()
        lines = [l.split() for l in text.splitlines()[1:] if l.strip()]
        assert len(arr) == len(lines), (key, len(arr), len(lines))
        if lines:
            table = np.array(lines, dtype=object)
            # Every column equals the text: floats at their dtype (nan as NaN), integers as
            # 64-bit (uJy beyond 32 bits for bright stars), filter and exposure names as written.
            for k, (name, dtype) in enumerate(FIELDS):
                if dtype.startswith("<f"):
                    want = table[:, k].astype(np.float64).astype(dtype)
                    assert np.array_equal(arr[name], want, equal_nan=True), (key, name)
                elif dtype.startswith("<i"):
                    want = np.array([int(v) for v in table[:, k]], dtype=np.int64)
                    assert np.array_equal(arr[name].astype(np.int64), want), (key, name)
                else:
                    assert [v.decode() for v in arr[name]] == list(table[:, k]), (key, name)
            nan_rows += int(np.isnan(arr["chi_n"]).sum())
            filters.update(f.decode() for f in arr["filter"])
            units.update(o.decode()[:3] for o in arr["obs"])
            biggest = max(biggest, int(np.abs(arr["ujy"]).max()))
        meta = json.loads(sample["json"])
        assert meta["rows"] == len(arr), key
        rows += len(arr)
    assert total == manifest["samples"], (total, manifest["samples"])
    print(f"webdataset read {total} light curves ({rows} rows); npy columns equal the result text")
    print(f"filters {''.join(sorted(filters))}; units {' '.join(sorted(units))}; "
          f"nan chi/N rows {nan_rows}; largest |uJy| {biggest}")


if __name__ == "__main__":
    main()
