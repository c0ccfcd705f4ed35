"""Peak memory of Otsu + count on a uint16 image or z-stack, in bytes per pixel, before and after.

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

Z-stacks (``--stack 64 --size 1024``: ``synthetic_stack``, spacing (2, 1, 1), 67 Mvoxels; Otsu
merges 27% of the voxels into 1676 components, one of them 22% of the stack), measured in
session 6 against that morning's tree, same run (fixed cost 271 MB = 4.2 B/px):

====================================================  ==============  ==============
count_cells options (``spacing=(2, 1, 1)``)           before B/px     after B/px
====================================================  ==============  ==============
defaults (size estimate, split, fill holes)           41.0            19.1
``split_touching=False`` (size estimate, fill holes)  15.0            9.4
``split_touching=False, fill_holes=False, min_size=0``  8.5             8.5
====================================================  ==============  ==============

The split floods 18 M voxels at full resolution (the nuclei are 32 um across: no subsampling).
Its work went 36.8 -> 14.9 B/px: the frame's distance map freed once copied into the clumps'
padded box, that box smoothed in place and read at the flooded voxels (raw and smoothed) before
the owner image is made, the flood given its values and owner image in place, one saddle per
pair of basins kept in the kernel instead of 11 M per-voxel records and their ``np.unique``,
pieces written a million voxels at a time. Without the split the size estimate takes its
distance peaks tile by tile (:func:`napari_binseg.size.distance_peaks`): no frame-size float
map. The peak is now the flood itself: labels 2 + owner image 4 B/px and six arrays per
flooded voxel (24 B each, 6.6 B/px here).

Run: ``python benchmarks/bench_memory.py [--size 8192] [--stack 0] [--base /work/base/src]``
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
spacing = None if image.ndim == 2 else (2.0, 1.0, 1.0)
if sys.argv[2] == "work":
    mask = nb.threshold(image, "otsu")
    labels, table = nb.count_cells(mask, image, spacing=spacing, **eval(sys.argv[3]))[:2]
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


def make_stack(path, depth, size, seed=0):
    """Anisotropic z-stack of dense, touching nuclei (``synthetic_stack``, spacing 2, 1, 1)."""
    from napari_binseg.synthetic import synthetic_stack

    np.save(path, synthetic_stack((depth, size, size), seed=seed)[0])


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
    parser.add_argument(
        "--stack", type=int, default=0, help="a z-stack of this many planes (spacing 2, 1, 1)"
    )
    parser.add_argument("--base", default="/work/base/src", help="source folder of 'before'")
    parser.add_argument(
        "--count",
        action="append",
        help="count_cells keywords as a Python dict literal (repeatable); default: {} "
        "(the defaults) and a plain count without the split and hole filling",
    )
    args = parser.parse_args(argv)
    pixels = args.size**2 * max(1, args.stack)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.npy"
        if args.stack:
            make_stack(path, args.stack, args.size)
        else:
            make_image(path, args.size)
        counts = args.count or [
            "{}",
            *(["dict(split_touching=False)"] if args.stack else []),
            "dict(split_touching=False, fill_holes=False, min_size=0)",
        ]
        shape = "x".join(map(str, [args.stack] * bool(args.stack) + [args.size] * 2))
        print(f"{shape} uint16 ({pixels / 1e6:.0f} Mpx): otsu + count_cells")
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
