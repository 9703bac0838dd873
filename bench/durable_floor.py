#!/usr/bin/env python3
"""The kernel's share of storing a fetch's payloads durably, without any HTTP: a floor for etd's
CPU per request.

Usage: durable_floor.py RAW_DIR DEST_DIR [UNITS_PER_COMMIT]
Copies every file under RAW_DIR (etd's raw/<source>/ of a finished fetch) into DEST_DIR the way
etd's fetch engine stores the payloads of its units: per unit, the key's folder is created and
each file written to a temporary file in it; then, per commit of UNITS_PER_COMMIT units (default
16; etd commits what waited 100 ms, or 64 units once that many wait), every temporary file is fsync'ed,
then all are renamed to their names, then each key's folder is fsync'ed once and their parent
once. Only the writing is timed (the files are read into memory first). Prints one line:
`files N kernel_s S user_s U` where S and U are this process's system and user CPU seconds spent
in the timed part. The kernel seconds are what any client pays to keep the same files as
durably as etd does; Python's own user time is not part of the floor.
"""

import os
import sys


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def main():
    raw, dest = sys.argv[1], sys.argv[2]
    payloads = []
    for root, _dirs, files in os.walk(raw):
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                payloads.append((os.path.relpath(root, raw), name, f.read()))
    payloads.sort()
    by_key = {}
    for key, name, data in payloads:
        by_key.setdefault(key, []).append((name, data))
    per_commit = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    os.makedirs(dest, exist_ok=True)
    t0 = os.times()
    i = 0
    keys = sorted(by_key)
    for start in range(0, len(keys), per_commit):
        staged, folders = [], []
        for key in keys[start:start + per_commit]:
            folder = os.path.join(dest, key)
            os.mkdir(folder)
            folders.append(folder)
            for name, data in by_key[key]:
                tmp = os.path.join(folder, f".etd-tmp-{i}")
                i += 1
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                os.write(fd, data)
                staged.append((fd, tmp, os.path.join(folder, name)))
        for fd, _, _ in staged:
            os.fsync(fd)
            os.close(fd)
        for _, tmp, path in staged:
            os.rename(tmp, path)
        for folder in folders:
            fsync_dir(folder)
        fsync_dir(dest)
    t1 = os.times()
    print(f"files {len(payloads)} kernel_s {t1.system - t0.system:.3f} user_s {t1.user - t0.user:.3f}")


if __name__ == "__main__":
    main()
