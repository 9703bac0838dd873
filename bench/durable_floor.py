#!/usr/bin/env python3
"""The kernel's share of storing a fetch's payloads durably, without any HTTP: a floor for etd's
CPU per request.

Usage: durable_floor.py RAW_DIR DEST_DIR
Copies every file under RAW_DIR (etd's raw/<source>/ of a finished fetch) into DEST_DIR the way
etd's raw store writes the payloads of a unit: the key's folder is created and its parent
fsync'ed, then for each file a temporary file is created in that folder, written, fsync'ed and
renamed to its name, and finally the key's folder is fsync'ed once. Only the writing is timed
(the files are read into memory first). Prints one line:
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
    os.makedirs(dest, exist_ok=True)
    t0 = os.times()
    i = 0
    for key, files in sorted(by_key.items()):
        folder = os.path.join(dest, key)
        os.mkdir(folder)
        fsync_dir(os.path.dirname(folder))
        for name, data in files:
            tmp = os.path.join(folder, f".etd-tmp-{i}")
            i += 1
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(folder, name))
        fsync_dir(folder)
    t1 = os.times()
    print(f"files {len(payloads)} kernel_s {t1.system - t0.system:.3f} user_s {t1.user - t0.user:.3f}")


if __name__ == "__main__":
    main()
