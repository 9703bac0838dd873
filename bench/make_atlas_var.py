#!/usr/bin/env python3
"""Generate a deterministic synthetic ATLAS-VAR data set for bench/atlas_var_bench.sh.

Writes into OUT_DIR:
  hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits
      the object catalog: a FITS binary table (extension OBJECT) with objid (K), ATO_ID (20A),
      ra (D), dec (D), CLASS (8A), prob_<C> (E) for the 14 classes, fp_LSperiod (D), and the
      other numeric columns of the UH light-curve files (gmag..ymag, fp_period, ls_Pday,
      fp_lngfitper, vf_c_med, vf_o_med), one row per object, ascending objid.
  lc/atlas_lc_dr1_{from}-{upto}.csv
      the light-curve partitions: 10-degree declination bands from -30 to 90 (12 files, whole
      degrees printed as integers: atlas_lc_dr1_-30--20.csv ... atlas_lc_dr1_80-90.csv), the
      36-column header of docs/archives.md 3.2, and per detection one row repeating the object's 30
      catalog columns followed by mjd, dra, ddec, filter (c|o), m, dm.

The layout follows the ATLAS-VAR emulator (tests/emulators/src/atlas_var/): objects uniform on
the sphere above dec -30, class frequencies, probabilities (own class the largest), periods and
light curves of the same kind, numbers printed with the same precision, and each object's rows
shuffled and cut into 2 or 3 runs that are not contiguous in its file. Runs are interleaved
within blocks of CHUNK objects (round 1: the first run of every object of the block in a random
order, round 2: the second runs in another order, ...), so an object's rows are spread over a few
megabytes of its file; the generator holds one block at a time.

The number of objects is chosen so that the CSVs total about GB gigabytes (1 GB = 1e9 bytes):
detections per object are uniform in [16, 56] (mean 36), rows are about 290 bytes, so 1 GB
is about 97,000 objects and 3.5 million rows.

Usage: make_atlas_var.py OUT_DIR GB [--seed S]
  When done, OUT_DIR/params.json records (GB, seed, generator version); if it already matches,
  nothing is rewritten.
"""

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np

CATALOG_FILE = "hlsp_atlas-var_atlas_ccd_all_cyan-orange_dr1_object.fits"
VERSION = 1

# Order of the prob_* columns in the UH files (docs/archives.md 3.2) and in the emulator.
CLASSES = ["CBF", "CBH", "DBF", "DBH", "HARD", "MIRA", "MPULSE", "MSINE", "NSINE", "PULSE", "SINE", "IRR", "LPV", "dubious"]
CLASS_WEIGHTS = np.array([6, 4, 2, 2, 3, 1, 2, 5, 7, 4, 6, 12, 8, 38], dtype=float)

CSV_COLUMNS = (
    ["ATO_ID", "starID", "ra", "dec", "CLASS", "gmag", "rmag", "imag", "zmag", "ymag"]
    + [f"prob_{c}" for c in CLASSES]
    + ["fp_period", "ls_Pday", "fp_LSperiod", "fp_lngfitper", "vf_c_med", "vf_o_med"]
    + ["mjd", "dra", "ddec", "filter", "m", "dm"]
)
assert len(CSV_COLUMNS) == 36

DEC_MIN, DEC_MAX, BAND = -30, 90, 10
DET_MIN, DET_MAX = 16, 56
CHUNK = 4096  # objects per interleaving block
DET_ROW_BYTES = 41.5  # mean length of the detection part "mjd,dra,ddec,f,m,dm\n"


def partitions():
    return [(f"atlas_lc_dr1_{lo}-{lo + BAND}.csv", lo, lo + BAND) for lo in range(DEC_MIN, DEC_MAX, BAND)]


def ato_ids(ra, dec):
    """J{hhmmss.ss}{+-ddmmss.s}, as the emulator spells them."""
    cs = np.mod(np.round(ra / 15.0 * 3600.0 * 100.0).astype(np.int64), 24 * 3600 * 100)
    h, rest = cs // 360_000, cs % 360_000
    m, s = rest // 6000, rest % 6000
    ds = np.round(np.abs(dec) * 36000.0).astype(np.int64)
    d, rest = ds // 36000, ds % 36000
    dm, dsec = rest // 600, rest % 600
    sign = np.where((dec < 0) & (ds > 0), "-", "+")
    return [
        f"J{a:02d}{b:02d}{c // 100:02d}.{c % 100:02d}{sg}{e:02d}{f:02d}{g // 10:02d}.{g % 10}"
        for a, b, c, sg, e, f, g in zip(h.tolist(), m.tolist(), s.tolist(), sign.tolist(), d.tolist(), dm.tolist(), dsec.tolist())
    ]


def make_objects(n, seed):
    """n candidate objects (before de-duplication of ATO_IDs), as a dict of arrays."""
    rng = np.random.default_rng([seed, 1])
    sin_lo = math.sin(math.radians(DEC_MIN))
    ra = np.minimum(np.round(rng.uniform(0.0, 360.0, n), 6), 359.999999)
    dec = np.clip(np.round(np.degrees(np.arcsin(rng.uniform(sin_lo, 1.0, n))), 6), DEC_MIN, 89.999999)
    cls = rng.choice(len(CLASSES), size=n, p=CLASS_WEIGHTS / CLASS_WEIGHTS.sum())
    # Probabilities: own class in [0.35, 0.97], the rest shared by cubed uniform weights.
    top = rng.integers(3500, 9701, n)
    w = rng.uniform(0.0, 1.0, (n, len(CLASSES))) ** 3 + 1e-3
    w[np.arange(n), cls] = 0.0
    units = np.minimum(np.floor(w / w.sum(axis=1, keepdims=True) * (10000 - top)[:, None]), (top - 1)[:, None])
    units[np.arange(n), cls] = 10000 - (units.sum(axis=1))
    probs = (units / 10000.0).astype(np.float32)
    rmag = rng.uniform(11.5, 18.8, n)
    colour = rng.uniform(0.1, 1.6, n)
    period = np.exp(rng.uniform(math.log(0.05), math.log(500.0), n))
    names = np.array(CLASSES)[cls]
    lsper = np.where(np.isin(names, ["CBF", "DBF"]), period / 2, period) * (1 + 0.002 * rng.standard_normal(n))
    o = {
        "ra": ra,
        "dec": dec,
        "cls": cls,
        "probs": probs,
        "fp_LSperiod": np.round(lsper, 6),
        "gmag": np.round(rmag + colour, 3).astype(np.float32),
        "rmag": np.round(rmag, 3).astype(np.float32),
        "imag": np.round(rmag - 0.35 * colour, 3).astype(np.float32),
        "zmag": np.round(rmag - 0.5 * colour, 3).astype(np.float32),
        "ymag": np.round(rmag - 0.58 * colour, 3).astype(np.float32),
        "fp_period": np.round(period, 6),
        "ls_Pday": np.round(lsper * (1 + 0.0005 * rng.standard_normal(n)), 6),
        "fp_lngfitper": np.round(np.exp(rng.uniform(math.log(20.0), math.log(2000.0), n)), 6),
        "vf_c_med": np.round(rmag + 0.45 * colour + 0.01 * rng.standard_normal(n), 3).astype(np.float32),
        "vf_o_med": np.round(rmag - 0.15 * colour + 0.01 * rng.standard_normal(n), 3).astype(np.float32),
        "amp": rng.uniform(0.01, 1.0, n),
        "phase": rng.uniform(0.0, 2 * math.pi, n),
        "ndet": rng.integers(DET_MIN, DET_MAX + 1, n),
    }
    o["ATO_ID"] = ato_ids(ra, dec)
    o["objid"] = 110_000_000_000 + np.arange(n, dtype=np.int64) * 7 + rng.integers(0, 7, n)
    return o


def take(o, idx):
    return {k: ([v[i] for i in idx] if isinstance(v, list) else v[idx]) for k, v in o.items()}


def prefixes(o):
    """The 30 catalog columns of each object's CSV rows, each followed by a comma."""
    out = []
    probs = o["probs"].tolist()
    cols = [o[k].tolist() for k in ("ra", "dec", "gmag", "rmag", "imag", "zmag", "ymag",
                                     "fp_period", "ls_Pday", "fp_LSperiod", "fp_lngfitper", "vf_c_med", "vf_o_med")]
    for i, (aid, oid, c) in enumerate(zip(o["ATO_ID"], o["objid"].tolist(), o["cls"].tolist())):
        ra, dec, g, r, im, z, y, fpp, lsp, fpl, lng, vc, vo = (col[i] for col in cols)
        p = ",".join(f"{x:.4f}" for x in probs[i])
        out.append(
            f"{aid},{oid},{ra:.6f},{dec:.6f},{CLASSES[c]},{g:.3f},{r:.3f},{im:.3f},{z:.3f},{y:.3f},"
            f"{p},{fpp:.6f},{lsp:.6f},{fpl:.6f},{lng:.6f},{vc:.3f},{vo:.3f},"
        )
    return out


def choose_objects(gb, seed):
    """Catalog objects (ascending objid, unique ATO_ID) whose rows total about gb * 1e9 bytes."""
    target = gb * 1e9
    guess = int(target / ((DET_MIN + DET_MAX) / 2 * 290) * 1.3) + 100
    o = make_objects(guess, seed)
    _, first = np.unique(np.array(o["ATO_ID"]), return_index=True)
    keep = np.sort(first)
    o = take(o, keep)
    pre = prefixes(o)
    size = np.cumsum(o["ndet"] * (np.array([len(p) for p in pre]) + DET_ROW_BYTES))
    n = int(np.searchsorted(size, target)) + 1
    if n > len(pre):
        sys.exit("make_atlas_var: internal error: too few candidate objects")
    return take(o, np.arange(n)), pre[:n]


def write_catalog(path, o):
    from astropy.io import fits

    n = len(o["ATO_ID"])
    cols = [
        fits.Column(name="objid", format="K", array=o["objid"]),
        fits.Column(name="ATO_ID", format="20A", array=np.array(o["ATO_ID"], dtype="S20")),
        fits.Column(name="ra", format="D", unit="deg", array=o["ra"]),
        fits.Column(name="dec", format="D", unit="deg", array=o["dec"]),
        fits.Column(name="CLASS", format="8A", array=np.array(CLASSES, dtype="S8")[o["cls"]]),
    ]
    for k, c in enumerate(CLASSES):
        cols.append(fits.Column(name=f"prob_{c}", format="E", array=o["probs"][:, k]))
    cols.append(fits.Column(name="fp_LSperiod", format="D", unit="d", array=o["fp_LSperiod"]))
    for k in ("gmag", "rmag", "imag", "zmag", "ymag"):
        cols.append(fits.Column(name=k, format="E", unit="mag", array=o[k]))
    for k in ("fp_period", "ls_Pday", "fp_lngfitper"):
        cols.append(fits.Column(name=k, format="D", unit="d", array=o[k]))
    for k in ("vf_c_med", "vf_o_med"):
        cols.append(fits.Column(name=k, format="E", unit="mag", array=o[k]))
    hdu = fits.BinTableHDU.from_columns(cols, name="OBJECT")
    primary = fits.PrimaryHDU()
    primary.header["TELESCOP"] = "ATLAS"
    primary.header["HLSPID"] = "ATLAS-VAR"
    primary.header["COMMENT"] = "Synthetic ATLAS-VAR DR1 object catalog written by etd bench/make_atlas_var.py."
    tmp = path + ".tmp"
    fits.HDUList([primary, hdu]).writeto(tmp, overwrite=True)
    os.replace(tmp, path)
    assert hdu.data.shape[0] == n


def block_rows(o, pre, idx, rng):
    """CSV text of one block of objects: each object's detections, shuffled, cut into 2-3 runs,
    runs interleaved so that no two runs of an object touch."""
    ndet = o["ndet"][idx]
    total = int(ndet.sum())
    obj = np.repeat(np.arange(len(idx)), ndet)  # block-local object of each row
    g = idx[obj]  # catalog index of each row
    mjd = np.round(rng.uniform(57000.0, 58500.0, total), 6)
    filt = np.where(rng.uniform(0, 1, total) < 0.65, "o", "c")
    base = np.where(filt == "o", o["vf_o_med"][g], o["vf_c_med"][g]).astype(np.float64)
    shape = np.sin(2 * math.pi * mjd / o["fp_period"][g] + o["phase"][g])
    dm = 0.004 + 0.02 * 10 ** (0.4 * (base - 17.0))
    m = base + o["amp"][g] * shape + dm * rng.standard_normal(total)
    dra = 0.15 * rng.standard_normal(total)
    ddec = 0.15 * rng.standard_normal(total)
    # Runs: a random position of each row inside its object, cut at 1 or 2 random points.
    start = np.concatenate(([0], np.cumsum(ndet)[:-1]))
    pos = np.empty(total, dtype=np.int64)
    for k in range(len(idx)):  # small per-object loop (a few thousand per block)
        pos[start[k]:start[k] + ndet[k]] = rng.permutation(ndet[k])
    nruns = rng.integers(2, 4, len(idx))
    cut1 = np.array([rng.integers(1, n) for n in ndet])
    cut2 = np.array([rng.integers(c + 1, n) if c + 1 < n else n for c, n in zip(cut1, ndet)])
    cut2 = np.where(nruns == 3, cut2, ndet)
    run = (pos >= cut1[obj]).astype(np.int64) + (pos >= cut2[obj])
    # Order of the objects within each round; the first object of a round must not be the last
    # of the previous round.
    orders = [rng.permutation(len(idx)) for _ in range(3)]
    for r in (1, 2):
        prev = [k for k in orders[r - 1] if r - 1 < nruns[k]]
        cur = [k for k in orders[r] if r < nruns[k]]
        if prev and len(cur) > 1 and cur[0] == prev[-1]:
            a = np.where(orders[r] == cur[0])[0][0]
            b = np.where(orders[r] == cur[1])[0][0]
            orders[r][[a, b]] = orders[r][[b, a]]
    rank = np.empty((3, len(idx)), dtype=np.int64)
    for r in range(3):
        rank[r, orders[r]] = np.arange(len(idx))
    order = np.lexsort((pos, rank[run, obj], run))
    lines = [
        f"{pre[gi]}{a:.6f},{b:.3f},{c:.3f},{f},{d:.3f},{e:.3f}\n"
        for gi, a, b, c, f, d, e in zip(
            g[order].tolist(), mjd[order].tolist(), dra[order].tolist(), ddec[order].tolist(),
            filt[order].tolist(), m[order].tolist(), np.maximum(dm[order], 0.001).tolist(),
        )
    ]
    return "".join(lines), total


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("gb", type=float)
    ap.add_argument("--seed", type=int, default=20241125)
    a = ap.parse_args()
    if not (a.gb > 0):
        sys.exit("make_atlas_var: GB must be positive")
    params = {"gb": a.gb, "seed": a.seed, "version": VERSION}
    marker = os.path.join(a.out_dir, "params.json")
    try:
        with open(marker) as f:
            if json.load(f).get("params") == params:
                print(f"make_atlas_var: {a.out_dir} is up to date ({params})", file=sys.stderr)
                return
    except (OSError, ValueError):
        pass
    if os.path.exists(a.out_dir):
        shutil.rmtree(a.out_dir)
    lc = os.path.join(a.out_dir, "lc")
    os.makedirs(lc)

    o, pre = choose_objects(a.gb, a.seed)
    n = len(pre)
    write_catalog(os.path.join(a.out_dir, CATALOG_FILE), o)
    band = np.floor((o["dec"] - DEC_MIN) / BAND).astype(np.int64)
    total_rows = total_bytes = 0
    header = ",".join(CSV_COLUMNS) + "\n"
    files = []
    for p, (name, lo, hi) in enumerate(partitions()):
        members = np.where(band == p)[0]  # ascending objid
        path = os.path.join(lc, name)
        rows = 0
        with open(path + ".tmp", "w", buffering=1 << 20) as f:
            f.write(header)
            for b, s in enumerate(range(0, len(members), CHUNK)):
                rng = np.random.default_rng([a.seed, 2, p, b])
                text, k = block_rows(o, pre, members[s:s + CHUNK], rng)
                f.write(text)
                rows += k
        os.replace(path + ".tmp", path)
        size = os.path.getsize(path)
        files.append({"name": name, "objects": int(len(members)), "rows": rows, "bytes": size})
        total_rows += rows
        total_bytes += size
        print(f"make_atlas_var: {name}: {len(members)} objects, {rows} rows, {size / 1e6:.1f} MB", file=sys.stderr)
    summary = {"params": params, "objects": n, "rows": total_rows, "csv_bytes": total_bytes, "files": files}
    with open(marker + ".tmp", "w") as f:
        json.dump(summary, f, indent=1)
    os.replace(marker + ".tmp", marker)
    print(f"make_atlas_var: {n} objects, {total_rows} rows, {total_bytes} CSV bytes ({total_bytes / 1e9:.3f} GB)", file=sys.stderr)


if __name__ == "__main__":
    main()
