"""How well are touching nuclei split? Object F1 at IoU 0.5 on the DSB 2018 training pool.

Input of every method: the binary union of the true nuclei of an image, a perfect foreground in
which touching nuclei are merged. Output: instance labels, matched one-to-one with the true
nuclei (IoU >= 0.5). Printed in one run:

- plain connected components (8-connectivity), the floor;
- an nsbatwm-style baseline: ``split_touching_objects`` of napari-segment-blobs-and-things-
  with-membranes (Gaussian sigma 3.5 on the distance transform, its local maxima as seeds,
  watershed, cut lines drawn by Sobel edges, binary opening), reimplemented here in its few lines;
- ours, ``count_cells(mask)`` with its defaults, and with ``split_touching="intensity"``.

F1 is pooled over all objects of all images (``2 tp / (2 tp + fp + fn)``); the mean of per-image
F1 is printed too.

``--blur``: out-of-focus synthetic nuclei instead (``synthetic_nuclei``, 25 nuclei of radius
8, 15, 25 and 40 px, some touching, blur sigma 0-8 px, seeds 0-2), mean relative count error of
the whole classic count (``count_cells(threshold(image), image=image)``) against a peer
pipeline (Otsu mask, then the nsbatwm-style split above), per blur level. The out-of-focus
split's constants (``_split.BLUR_*``) were chosen on seeds 0-2; ``--seeds 3 4 5`` checks
them on images they were not chosen on.

``--blur --scales 0.5 1 2``: the same images at other magnifications (nuclei, image and blur
scaled alike; the same layout at every scale), ours only: count error per scale, over all
blur levels and at blur sigma 8 (x the scale). ``--base DIR`` also runs it with the
``napari_binseg`` of an older checkout's ``src`` (a subprocess), printed before -> after.

Run: ``python benchmarks/eval_split.py [--limit N] [--data DIR] [--blur [--seeds 0 1 2]
[--scales 0.5 1 1.5 2 3 [--base /path/to/old/src]]]``
"""

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "dsb2018-train"


def match_counts(truth, pred):
    """(tp, n_true, n_pred) at IoU >= 0.5, with napari_binseg.evaluate when available."""
    try:
        from napari_binseg import evaluate
    except (ImportError, AttributeError):
        evaluate = None
    if evaluate is not None:
        row = evaluate(truth, pred, thresholds=0.5, label_masks=False).iloc[0]
        return int(row["tp"]), int(row["n_true"]), int(row["n_pred"])
    # Fallback: above IoU 0.5 a match is unique, so counting pairs is exact.
    import fastremap

    truth = fastremap.renumber(np.asarray(truth), in_place=False)[0].astype(np.int64)
    pred = fastremap.renumber(np.asarray(pred), in_place=False)[0].astype(np.int64)
    nt, npred = int(truth.max()), int(pred.max())
    inter = np.bincount(
        truth.ravel() * (npred + 1) + pred.ravel(), minlength=(nt + 1) * (npred + 1)
    ).reshape(nt + 1, npred + 1)
    union = inter.sum(1)[:, None] + inter.sum(0)[None, :] - inter
    tp = int((inter[1:, 1:] / np.maximum(union[1:, 1:], 1) >= 0.5).sum())
    return tp, nt, npred


def plain_cc(mask, image):
    import cc3d

    return cc3d.connected_components(mask, connectivity=8)


def nsbatwm_split(mask, image, sigma=3.5):
    """nsbatwm ``split_touching_objects`` (its code, 2D branch) followed by labeling."""
    from scipy import ndimage as ndi
    from skimage import filters, measure
    from skimage.feature import peak_local_max
    from skimage.morphology import binary_opening
    from skimage.segmentation import watershed

    binary = np.asarray(mask)
    distance = ndi.distance_transform_edt(binary)
    blurred_distance = filters.gaussian(distance, sigma=sigma)
    fp = np.ones((3,) * binary.ndim)
    coords = peak_local_max(blurred_distance, footprint=fp, labels=measure.label(binary))
    peaks = np.zeros(distance.shape, dtype=bool)
    peaks[tuple(coords.T)] = True
    markers = measure.label(peaks)
    labels = watershed(-blurred_distance, markers, mask=binary)
    edges = filters.sobel(labels)
    edges2 = filters.sobel(binary)
    almost = np.logical_not(np.logical_xor(edges != 0, edges2 != 0)) * binary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return measure.label(binary_opening(almost))


def ours(mask, image):
    from napari_binseg import count_cells

    return count_cells(mask)[0]


def ours_intensity(mask, image):
    from napari_binseg import count_cells

    return count_cells(mask, image, split_touching="intensity")[0]


METHODS = {
    "connected components": plain_cc,
    "nsbatwm-style split": nsbatwm_split,
    "ours (count_cells)": ours,
    "ours, intensity-guided": ours_intensity,
}


BLUR_RADII = (8.0, 15.0, 25.0, 40.0)
BLUR_SIGMAS = (0.0, 1.0, 2.0, 4.0, 6.0, 8.0)


def blur_sweep(seeds=(0, 1, 2)):
    """Mean relative count error per blur sigma, ours and the peer's, on synthetic nuclei."""
    from skimage.filters import threshold_otsu

    from napari_binseg import count_cells, threshold
    from napari_binseg.synthetic import synthetic_nuclei

    print("blur sigma: mean count error, ours (count_cells(threshold)) / peer (Otsu + split)")
    means = []
    for blur in BLUR_SIGMAS:
        ours_err, peer_err, by_radius = [], [], []
        for radius in BLUR_RADII:
            errors = []
            for seed in seeds:
                size = int(20 * radius)  # about 25 nuclei at any radius
                image, truth = synthetic_nuclei((size, size), radius=radius, blur=blur, seed=seed)
                n = int(truth.max())
                ours_n = len(count_cells(threshold(image), image=image)[1])
                peer_n = int(nsbatwm_split(image > threshold_otsu(image), image).max())
                ours_err.append(abs(ours_n - n) / n)
                peer_err.append(abs(peer_n - n) / n)
                errors.append((ours_n - n) / n)
            by_radius.append(f"r{radius:g} {np.mean(errors):+.0%}")
        means.append((np.mean(ours_err), np.mean(peer_err)))
        print(
            f"  {blur:g}: {np.mean(ours_err):.1%} / {np.mean(peer_err):.1%}"
            f"   (ours, signed, per radius: {', '.join(by_radius)})"
        )
    ours_mean, peer_mean = np.mean(means, axis=0)
    print(f"  all: {ours_mean:.1%} / {peer_mean:.1%}")


def scale_sweep(seeds, scales):
    """Signed relative count errors of ours, ``{scale: {radius: {blur: [per seed]}}}``, on
    the ``--blur`` images with nuclei, image and blur all scaled by each of ``scales``."""
    from napari_binseg import count_cells, threshold
    from napari_binseg.synthetic import synthetic_nuclei

    errors = {}
    for scale in scales:
        errors[str(scale)] = by_radius = {}
        for radius in BLUR_RADII:
            by_radius[str(radius)] = by_blur = {}
            for blur in BLUR_SIGMAS:
                by_blur[str(blur)] = []
                for seed in seeds:
                    size = int(20 * radius * scale)
                    image, truth = synthetic_nuclei(
                        (size, size), radius=radius * scale, blur=blur * scale, seed=seed
                    )
                    n = int(truth.max())
                    found = len(count_cells(threshold(image), image=image)[1])
                    by_blur[str(blur)].append((found - n) / n)
    return errors


def print_scales(after, before, seeds):
    """Mean absolute count error per scale (all blur levels, blur 8), before -> after."""

    def summary(errors):
        levels = {
            b: [abs(e) for r in errors.values() for e in r[b]] for b in next(iter(errors.values()))
        }
        signed = {r: np.mean(by_blur[str(BLUR_SIGMAS[-1])]) for r, by_blur in errors.items()}
        return (
            np.mean([np.mean(v) for v in levels.values()]),
            np.mean(levels[str(BLUR_SIGMAS[-1])]),
            signed,
        )

    print(
        f"seeds {list(seeds)}; mean count error of count_cells(threshold(image), image=image),"
        f" nuclei of radius {', '.join(f'{r:g}' for r in BLUR_RADII)} and blur sigma "
        f"{', '.join(f'{b:g}' for b in BLUR_SIGMAS)} px at 1x, all scaled"
    )
    print("  scale: all blur levels | blur 8 x scale | blur 8 signed per radius at 1x radius")
    for scale, errors in after.items():
        all_a, b8_a, signed_a = summary(errors)
        cells = [f"{all_a:.1%}", f"{b8_a:.1%}"]
        per_radius = [f"r{float(r):g} {signed_a[r]:+.0%}" for r in signed_a]
        if before is not None:
            all_b, b8_b, signed_b = summary(before[scale])
            cells = [f"{all_b:.1%} -> {all_a:.1%}", f"{b8_b:.1%} -> {b8_a:.1%}"]
            per_radius = [
                f"r{float(r):g} {signed_b[r]:+.0%} -> {signed_a[r]:+.0%}" for r in signed_a
            ]
        print(f"  {float(scale):g}x: {cells[0]} | {cells[1]} | {', '.join(per_radius)}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    parser.add_argument("--blur", action="store_true", help="out-of-focus synthetic count")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="with --blur")
    parser.add_argument("--scales", type=float, nargs="+", help="with --blur: magnifications")
    parser.add_argument("--base", type=Path, help="with --scales: an older checkout's src")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scales and not args.blur:
        parser.error("--scales needs --blur")
    if args.base and not args.scales:
        parser.error("--base needs --scales")
    if args.blur and args.scales:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            after = scale_sweep(tuple(args.seeds), tuple(args.scales))
        if args.json:
            print(json.dumps(after))
            return 0
        before = None
        if args.base is not None:
            cmd = [sys.executable, __file__, "--blur", "--json", "--seeds"]
            cmd += [str(s) for s in args.seeds] + ["--scales"] + [str(s) for s in args.scales]
            env = {**os.environ, "PYTHONPATH": str(args.base)}
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
            before = json.loads(out.stdout.strip().splitlines()[-1])
        print_scales(after, before, args.seeds)
        return 0
    if args.blur:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            blur_sweep(tuple(args.seeds))
        return 0
    index_csv = args.data / "index.csv"
    if not index_csv.is_file():
        print(f"no data at {args.data}; pass --data DIR", file=sys.stderr)
        return 1
    names = pd.read_csv(index_csv, dtype={"name": str})["name"].tolist()[: args.limit]
    totals = {m: np.zeros(3, np.int64) for m in METHODS}
    per_image = {m: [] for m in METHODS}
    seconds = dict.fromkeys(METHODS, 0.0)
    for name in names:
        truth = tifffile.imread(args.data / "labels" / f"{name}.tif")
        image = tifffile.imread(args.data / "images" / f"{name}.tif")
        mask = truth > 0
        for method, fn in METHODS.items():
            t0 = time.perf_counter()
            pred = fn(mask, image)
            seconds[method] += time.perf_counter() - t0
            counts = np.array(match_counts(truth, pred))
            totals[method] += counts
            tp, nt, npred = counts
            per_image[method].append(2 * tp / (nt + npred) if nt + npred else 1.0)
    print(
        f"{len(names)} images, {int(totals['connected components'][1])} true nuclei; "
        "object F1 at IoU 0.5 (pooled over objects; mean of per-image F1)"
    )
    for method in METHODS:
        tp, nt, npred = totals[method]
        f1 = 2 * tp / (nt + npred)
        print(
            f"  {method:26s} F1 {f1:.4f}  per-image {np.mean(per_image[method]):.4f}"
            f"  objects {npred:6d}  time {seconds[method]:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
