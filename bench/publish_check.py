#!/usr/bin/env python3
"""Check `sha256sum` output against an etd manifest, as a user verifying a copy would.

Usage: sha256sum DEST/* | publish_check.py MANIFEST_JSON
Every shard the manifest lists must appear in the sha256sum output (matched by file name) with
the manifest's sha256. Exits 1 and names the shards that are missing or differ.
"""

import json
import sys


def main():
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    want = {s["name"]: s["sha256"] for s in manifest["shards"]}
    got = {}
    for line in sys.stdin:
        digest, name = line.rstrip("\n").split(None, 1)
        got[name.lstrip("*").rsplit("/", 1)[-1]] = digest
    bad = sorted(n for n, h in want.items() if got.get(n) != h)
    if bad:
        sys.exit(f"publish_check: {len(bad)} of {len(want)} shards missing or different: {', '.join(bad[:5])}")
    print(f"publish_check: all {len(want)} shards match the manifest's sha256")


if __name__ == "__main__":
    main()
