"""Shared by the interop checks: read an etd shard folder as a consumer would."""

import json
import os

import webdataset as wds


def manifest(shard_dir):
    """The folder's manifest.json."""
    with open(os.path.join(shard_dir, "manifest.json")) as f:
        return json.load(f)


def samples(shard_dir, man):
    """Every sample of every shard the manifest lists, in order, read with webdataset
    (`.tar.zst` shards through `pipe:zstd -dc`)."""
    for shard in man["shards"]:
        path = os.path.join(shard_dir, shard["name"])
        url = f"pipe:zstd -dc < {path}" if path.endswith(".zst") else path
        yield from wds.WebDataset(url, shardshuffle=False)
