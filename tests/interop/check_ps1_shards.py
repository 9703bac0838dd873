"""Read etd PS1 shards with the real consumers and check them against the cutouts inside them.

usage: check_ps1_shards.py SHARD_DIR FILTERS

For every sample that webdataset reads (.tar directly, .tar.zst through `pipe:zstd -dc <`):
- `npy` is float32 (C,H,W) with C = len(FILTERS), and plane c equals what astropy reads from the
  sample's own `<filter>.fits` member (the original cutout; NaN where astropy has NaN);
- `cls` is an integer index into the manifest's `classes`, naming the `json` label;
- `png` is an 8-bit RGB PNG of W x H (three filters).
Prints one summary line and exits non-zero on the first mismatch.
"""

import io
import json
import sys

import numpy as np
from astropy.io import fits

import etd_shards


def main():
    shard_dir, filters = sys.argv[1], sys.argv[2]
    manifest = etd_shards.manifest(shard_dir)
    classes = manifest["classes"]
    total = 0
    for sample in etd_shards.samples(shard_dir, manifest):
        total += 1
        key = sample["__key__"]
        arr = np.load(io.BytesIO(sample["npy"]))
        assert arr.dtype == np.float32, (key, arr.dtype)
        assert arr.ndim == 3 and arr.shape[0] == len(filters), (key, arr.shape)
        for c, f in enumerate(filters):
            with fits.open(io.BytesIO(sample[f"{f}.fits"])) as hdul:
                want = hdul[0].data.astype(np.float32)
            assert want.shape == arr.shape[1:], (key, f, want.shape, arr.shape)
            same = (arr[c] == want) | (np.isnan(arr[c]) & np.isnan(want))
            assert same.all(), (key, f, int((~same).sum()))
        meta = json.loads(sample["json"])
        cls = int(sample["cls"])
        assert 0 <= cls < len(classes) and classes[cls] == meta["label"], (key, cls, meta["label"])
        png = sample["png"]
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR", key
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        assert (width, height) == (arr.shape[2], arr.shape[1]) and png[25] == 2, (key, width, height, png[25])
    assert total == manifest["samples"], (total, manifest["samples"])
    print(f"webdataset read {total} PS1 samples; npy equals astropy on the {filters} cutouts")


if __name__ == "__main__":
    main()
