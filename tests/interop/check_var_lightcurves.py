"""Read etd ATLAS-VAR shards with webdataset + numpy and check each light curve.

usage: check_var_lightcurves.py SHARD_DIR

For every sample: `npy` is a 1-d structured array with exactly the documented dtype (mjd f8,
filter S1, m, dm, dra, ddec f4), its rows sorted by mjd with filters `c`/`o`; `json` agrees on the
row count, the rows per filter and the MJD range; `cls` is the index of the json's `CLASS` in the
manifest's `classes`.
"""

import io
import json
import sys

import numpy as np

import etd_shards

DTYPE = np.dtype([("mjd", "<f8"), ("filter", "S1"), ("m", "<f4"), ("dm", "<f4"), ("dra", "<f4"), ("ddec", "<f4")])


def main():
    shard_dir = sys.argv[1]
    manifest = etd_shards.manifest(shard_dir)
    classes = manifest["classes"]
    total = rows = 0
    for sample in etd_shards.samples(shard_dir, manifest):
        total += 1
        key = sample["__key__"]
        assert set(k for k in sample if not k.startswith("__")) == {"npy", "json", "cls"}, (key, list(sample))
        arr = np.load(io.BytesIO(sample["npy"]))
        assert arr.dtype == DTYPE, (key, arr.dtype)
        assert arr.ndim == 1 and len(arr) > 0, (key, arr.shape)
        assert np.all(np.diff(arr["mjd"]) >= 0), (key, "not sorted by mjd")
        assert set(arr["filter"].tolist()) <= {b"c", b"o"}, (key, set(arr["filter"].tolist()))
        meta = json.loads(sample["json"])
        assert meta["rows"] == len(arr), (key, meta["rows"], len(arr))
        per_filter = {f.decode(): int(n) for f, n in zip(*np.unique(arr["filter"], return_counts=True))}
        assert meta["rows_per_filter"] == per_filter, (key, meta["rows_per_filter"], per_filter)
        assert meta["mjd_min"] == arr["mjd"][0] and meta["mjd_max"] == arr["mjd"][-1], key
        cls = int(sample["cls"])
        assert classes[cls] == meta["CLASS"] and meta["cls"] == cls, (key, cls, meta["CLASS"])
        rows += len(arr)
    assert total == manifest["samples"], (total, manifest["samples"])
    print(f"webdataset read {total} ATLAS-VAR light curves ({rows} rows); dtype and order as documented")


if __name__ == "__main__":
    main()
