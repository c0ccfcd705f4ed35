"""Peak memory of Otsu + count on a 2D uint16 image, in bytes per pixel, before and after.

Each measurement is its own process run under ``/usr/bin/time -v`` (its "Maximum resident
set size"): load the image (``.npy``), ``threshold(image, "otsu")``, ``count_cells(mask,
image)`` with the default options. A second process that only imports the same modules and
loads the image gives the fixed cost (interpreter, libraries, the input itself), so the
table shows the whole peak and the part the work adds. "before" imports ``napari_binseg``
from ``--base`` (default ``/work/base/src``, the tree before this session).

Measured (8192x8192, 67 Mpx, 2-core VM; fixed cost 272 MB = 4.25 B/px in both trees):

====================================================  ==============  ==============
count_cells options                                   before B/px     after B/px
====================================================  ==============  ==============
defaults (size estimate, split, fill holes)           42.4            9.7
``split_touching=False, fill_holes=False, min_size=0``  20.8            8.4
====================================================  ==============  ==============

The plain count's work went from 16.6 to 4.1 B/px: the mask is labeled from its runs
(:mod:`napari_binseg._runs`: a few integers per run, no provisional-label image) straight into
uint16 labels (fewer than 65536 objects), which are relabeled in place and returned as they
are: numba's runtime ~0.9 + mask 1 + labels 2 + the table. The defaults add 1.3 B/px at
their peak, the clumps' flood: the distances of the non-round objects kept in their boxes
(1.0 B/px here) and one part of the clumps' atlas (``_split._flood_atlas``: packed, smoothed,
flooded, merged and written 1 Mpx at a time). Holes are filled from background runs and the
distance map is computed per object in its box: no full-size temporary is left on the path.

Run: ``python benchmarks/bench_memory.py [--size 8192] [--base /work/base/src]``
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]

WORK = """
import sys, numpy as np
import napari_binseg as nb
from napari_binseg import counting, thresholding  # noqa: F401 (same imports in both runs)
import cc3d, fastremap, numba, pandas, scipy.ndimage, skimage.filters  # noqa: F401
image = np.load(sys.argv[1])
if sys.argv[2] == "work":
    mask = nb.threshold(image, "otsu")
    labels, table = nb.count_cells(mask, image, **eval(sys.argv[3]))[:2]
    print("objects", len(table))
"""


def make_image(path, size, seed=0):
    """Nuclei-like discs (radius 6-14 px, ~25% foreground, some touching) on noise, uint16."""
    rng = np.random.default_rng(seed)
    image = rng.normal(400, 60, (size, size)).clip(0).astype(np.uint16)
    n = int(size * size * 0.25 / (np.pi * 10**2))
    ys, xs = rng.integers(0, size, n), rng.integers(0, size, n)
    radii = rng.uniform(6, 14, n)
    for r in np.unique(radii.round()):
        r = int(r)
        yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
        disc = yy**2 + xx**2 <= r * r
        for y, x in zip(ys[radii.round() == r], xs[radii.round() == r], strict=True):
            y0, x0 = max(y - r, 0), max(x - r, 0)
            y1, x1 = min(y + r + 1, size), min(x + r + 1, size)
            sub = disc[y0 - (y - r) : y1 - (y - r), x0 - (x - r) : x1 - (x - r)]
            image[y0:y1, x0:x1][sub] = 2000 + rng.integers(0, 400)
    np.save(path, image)


def peak_mb(src, image_path, mode, count="{}"):
    """Maximum RSS (MB) of one run, and its output."""
    env = dict(os.environ, PYTHONPATH=str(src))
    proc = subprocess.run(
        ["/usr/bin/time", "-v", sys.executable, "-c", WORK, str(image_path), mode, count],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    return kb / 1024, proc.stdout.strip()


def trees(base):
    return (("before", base), ("after", HERE / "src"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192, help="image side (pixels)")
    parser.add_argument("--base", default="/work/base/src", help="source folder of 'before'")
    parser.add_argument(
        "--count",
        action="append",
        help="count_cells keywords as a Python dict literal (repeatable); default: {} "
        "(the defaults) and a plain count without the split and hole filling",
    )
    args = parser.parse_args(argv)
    pixels = args.size**2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.npy"
        make_image(path, args.size)
        counts = args.count or [
            "{}",
            "dict(split_touching=False, fill_holes=False, min_size=0)",
        ]
        print(f"{args.size}x{args.size} uint16 ({pixels / 1e6:.0f} Mpx): otsu + count_cells")
        fixed = {name: peak_mb(src, path, "load")[0] for name, src in trees(args.base)}
        print("fixed (imports + input) MB: " + ", ".join(f"{k} {v:.0f}" for k, v in fixed.items()))
        print(f"{'':8}{'peak MB':>9}{'B/px':>7}{'work B/px':>11}  result  count_cells(**{{}})")
        for count in counts:
            for name, src in trees(args.base):
                peak, out = peak_mb(src, path, "work", count)
                print(
                    f"{name:8}{peak:9.0f}{peak * 2**20 / pixels:7.1f}"
                    f"{(peak - fixed[name]) * 2**20 / pixels:11.1f}  {out}  {count}"
                )


if __name__ == "__main__":
    main()
