"""Accuracy of the classic count on real nuclei of several sizes: pooled object F1 at IoU 0.5
and mean relative count error, for our defaults and for plain Otsu + connected components.

Data: ``../shared/data/s-bsst265-train`` (large nuclei, 63x, and 20x tissue) and a subset of
``../shared/data/dsb2018-train`` (nuclei 10-40 px). Each set is cut into a development part
(tuning) and a held-out part (final numbers only) by a hash of the image name, so the split
does not depend on the order of files.

``--set stack``: synthetic anisotropic z-stacks (``synthetic_stack``, exact labels), 3D
connected components for the plain pipeline. Compare with the code before this session by
running with ``PYTHONPATH=/work/base/src``.

Run: ``python benchmarks/eval_count.py [--part dev|held|all] [--set bsst|dsb|both|stack|all]``
"""

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import tifffile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def part_of(name):
    """'held' for about a third of the names, 'dev' for the rest (stable hash)."""
    h = int(hashlib.md5(name.encode()).hexdigest()[:8], 16)
    return "held" if h % 3 == 0 else "dev"


def images(which, part, dsb_every=4):
    root = DATA / ("s-bsst265-train" if which == "bsst" else "dsb2018-train")
    names = sorted(p.stem for p in (root / "images").glob("*.tif"))
    if which == "dsb":
        names = names[::dsb_every]  # a subset: the DSB pool is large
    for name in names:
        if part != "all" and part_of(name) != part:
            continue
        yield (
            name,
            tifffile.imread(root / "images" / f"{name}.tif"),
            tifffile.imread(root / "labels" / f"{name}.tif"),
        )


def stacks(part):
    """Synthetic anisotropic z-stacks of dense touching nuclei (``synthetic_stack``), z step
    2-4x the pixel: seeds 0-2 are the development part, 10-12 the held-out part."""
    from napari_binseg.synthetic import synthetic_stack

    seeds = {"dev": [0, 1, 2], "held": [10, 11, 12]}
    for seed in seeds["dev"] + seeds["held"] if part == "all" else seeds[part]:
        spacing = (2.0 + seed % 3, 1.0, 1.0)
        image, truth = synthetic_stack((32, 192, 192), spacing=spacing, seed=seed)
        yield f"stack{seed} dz={spacing[0]:g}", image, truth, spacing


def plain_otsu(image, spacing=None):
    from skimage.filters import threshold_otsu
    from skimage.measure import label
    from skimage.morphology import remove_small_objects

    lab = label(image > threshold_otsu(image))
    return remove_small_objects(lab, max_size=9)


def ours(image, spacing=None):
    from napari_binseg import count_cells, threshold

    return count_cells(threshold(image), image=image, spacing=spacing)[0]


def main():
    from napari_binseg import evaluate
    from napari_binseg.evaluation import aggregate

    ap = argparse.ArgumentParser()
    ap.add_argument("--part", default="dev", choices=("dev", "held", "all"))
    ap.add_argument("--set", default="both", choices=("bsst", "dsb", "both", "stack", "all"))
    ap.add_argument("--only", default="both", choices=("ours", "plain", "both"))
    ap.add_argument("-v", action="store_true", help="per-image lines")
    args = ap.parse_args()
    sets = {"both": ("bsst", "dsb"), "all": ("bsst", "dsb", "stack")}.get(args.set, (args.set,))
    methods = {"plain Otsu+CC": plain_otsu, "count_cells(threshold)": ours}
    if args.only == "ours":
        methods.pop("plain Otsu+CC")
    elif args.only == "plain":
        methods.pop("count_cells(threshold)")
    for which in sets:
        if which == "stack":
            data = list(stacks(args.part))
        else:
            data = [(n, im, gt, None) for n, im, gt in images(which, args.part)]
        for label, fn in methods.items():
            tables, errors, t = [], [], 0.0
            for name, image, truth, spacing in data:
                t0 = time.perf_counter()
                pred = fn(image, spacing)
                t += time.perf_counter() - t0
                tab = evaluate(truth, pred, thresholds=[0.5])
                tables.append(tab)
                n_true = int(len(np.unique(truth)) - 1)
                n_pred = int(tab["n_pred"].iloc[0])
                errors.append(abs(n_pred - n_true) / n_true)
                if args.v:
                    print(f"  {name}: true {n_true} pred {n_pred} f1 {tab['f1'].iloc[0]:.2f}")
            pooled = aggregate(tables)
            print(
                f"{which} {args.part} ({len(data)} images) {label}: F1@0.5 "
                f"{pooled['f1'].iloc[0]:.3f}, mean count error {np.mean(errors):.1%}, "
                f"median {np.median(errors):.1%}, {t:.1f} s"
            )


if __name__ == "__main__":
    main()
