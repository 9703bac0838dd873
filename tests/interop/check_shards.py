"""Read etd shards with the real consumers and compare them with the source FITS files.

usage: check_shards.py SHARD_DIR DATA_DIR NAN_POLICY

- webdataset reads every sample of every shard (.tar directly, .tar.zst through
  `pipe:zstd -dc < shard`), in manifest order;
- every `npy` equals what astropy reads from the source FITS named in the sample's `json`
  (after the NaN policy), with the same shape and dtype float32;
- every `txt` equals the source file's bytes;
- the sample count equals the manifest's.
Prints one line per shard and exits non-zero on the first mismatch.
"""

import io
import json
import os
import sys

import numpy as np
import webdataset as wds
from astropy.io import fits


def main():
    shard_dir, data_dir, nan_policy = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(os.path.join(shard_dir, "manifest.json")) as f:
        manifest = json.load(f)
    total = 0
    for shard in manifest["shards"]:
        path = os.path.join(shard_dir, shard["name"])
        url = f"pipe:zstd -dc < {path}" if path.endswith(".zst") else path
        n = 0
        for sample in wds.WebDataset(url, shardshuffle=False):
            n += 1
            key = sample["__key__"]
            if "npy" in sample:
                meta = json.loads(sample["json"])
                arr = np.load(io.BytesIO(sample["npy"]))
                src = os.path.join(data_dir, meta["inputs"][0]["path"])
                with fits.open(src) as hdul:
                    hdu = next(h for h in hdul if h.data is not None and h.is_image)
                    want = np.asarray(hdu.data, dtype=np.float32)
                if nan_policy == "zero":
                    want = np.where(np.isfinite(want), want, np.float32(0))
                assert arr.dtype == np.float32, (key, arr.dtype)
                assert arr.shape == want.shape, (key, arr.shape, want.shape)
                assert np.array_equal(arr, want, equal_nan=True), key
                assert meta["image"]["shape"] == list(want.shape), key
            if "txt" in sample:
                meta = json.loads(sample["json"])
                txt = [i["path"] for i in meta["inputs"] if i["path"].endswith(".txt")]
                assert len(txt) == 1, (key, meta["inputs"])
                with open(os.path.join(data_dir, txt[0]), "rb") as f:
                    assert f.read() == sample["txt"], key
        assert n == shard["samples"], (shard["name"], n, shard["samples"])
        print(f"{shard['name']}: {n} samples OK")
        total += n
    assert total == manifest["samples"], (total, manifest["samples"])
    print(f"webdataset read {total} samples; npy equals astropy")


if __name__ == "__main__":
    main()
