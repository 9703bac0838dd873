#!/usr/bin/env python3
"""The kernel's share of storing a fetch's payloads durably, without any HTTP: a floor for etd's
CPU per request.

Usage: durable_floor.py RAW_DIR DEST_DIR
Copies every file under RAW_DIR (etd's raw/<source>/ of a finished fetch) into DEST_DIR the way
etd's raw store writes a payload: the key's folder is created, then for each file a temporary file
is created in that folder, written, fsync'ed, renamed to its name, and the folder fsync'ed. Only
the writing is timed (the files are read into memory first). Prints one line:
`files N kernel_s S user_s U` where S and U are this process's system and user CPU seconds spent
in the timed part. The kernel seconds are what any client pays to keep the same files as
durably as etd does; Python's own user time is not part of the floor.
"""

import os
import sys


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
    t0 = os.times()
    made = set()
    for i, (key, name, data) in enumerate(payloads):
        folder = os.path.join(dest, key)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        tmp = os.path.join(folder, f".etd-tmp-{i}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, os.path.join(folder, name))
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    t1 = os.times()
    print(f"files {len(payloads)} kernel_s {t1.system - t0.system:.3f} user_s {t1.user - t0.user:.3f}")


if __name__ == "__main__":
    main()
