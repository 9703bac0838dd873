"""Read etd ATLAS light-curve shards with webdataset + numpy and check them against the text.

usage: check_lightcurves.py SHARD_DIR

For every sample: `npy` is a 1-d structured array with the documented fields and dtypes; its
`mjd`, `ujy`, `m`, `filter` and `obs` columns equal what numpy reads from the sample's own `txt`
(the server's original result file, `###MJD` header); the `json` row count agrees.
"""

import io
import json
import sys

import numpy as np

import etd_shards

FIELDS = [
    ("mjd", "<f8"), ("m", "<f4"), ("dm", "<f4"), ("ujy", "<i4"), ("dujy", "<i4"), ("filter", "S1"),
    ("err", "<i4"), ("chi_n", "<f4"), ("ra", "<f8"), ("dec", "<f8"), ("x", "<f4"), ("y", "<f4"),
    ("maj", "<f4"), ("min", "<f4"), ("phi", "<f4"), ("apfit", "<f4"), ("mag5sig", "<f4"), ("sky", "<f4"),
    ("obs", "S20"),
]


def main():
    shard_dir = sys.argv[1]
    manifest = etd_shards.manifest(shard_dir)
    total = rows = 0
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
            assert np.array_equal(arr["mjd"], table[:, 0].astype(np.float64)), key
            assert np.array_equal(arr["ujy"], table[:, 3].astype(np.int64)), key
            m = table[:, 1].astype(np.float32)
            assert np.array_equal(arr["m"], m, equal_nan=True), key
            assert [f.decode() for f in arr["filter"]] == list(table[:, 5]), key
            assert [o.decode() for o in arr["obs"]] == list(table[:, 18]), key
        meta = json.loads(sample["json"])
        assert meta["rows"] == len(arr), key
        rows += len(arr)
    assert total == manifest["samples"], (total, manifest["samples"])
    print(f"webdataset read {total} light curves ({rows} rows); npy columns equal the result text")


if __name__ == "__main__":
    main()
