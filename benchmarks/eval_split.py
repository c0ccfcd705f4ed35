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

Run: ``python benchmarks/eval_split.py [--limit N] [--data DIR]``
"""

import argparse
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--limit", type=int, default=None, help="first N images only")
    args = parser.parse_args(argv)
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
