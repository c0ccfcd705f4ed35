"""Speed of ``evaluate`` against the usual dense approach, printed as a ratio in one run.

Both sides compute the tp/fp/fn of an instance segmentation at the ten IoU thresholds
0.5 ... 0.95:

- baseline (what StarDist's and Cellpose's ``matching`` do): ``skimage.metrics.
  contingency_table`` (sparse overlap counts), a dense (n_true x n_pred) IoU matrix, and
  ``scipy.optimize.linear_sum_assignment`` on the whole matrix per threshold;
- ours: ``napari_binseg.evaluate`` (sparse table, assignment only inside the small connected
  groups of candidate pairs).

Cases: 2D images 512^2, 768^2 and 1536^2 with about 350, 720 and 2,900 nuclei (random blobs;
the prediction is the truth shifted by one pixel, then relabelled). Both results are checked to
agree.
Medians of ``--repeats`` runs; machines are noisy, compare the ratios.

Run: ``python benchmarks/bench_evaluation.py [--repeats 3] [--quick]``
"""

import argparse
import time
from functools import partial

import numpy as np
from scipy import ndimage as ndi


def blobs(size, seed=0):
    rng = np.random.default_rng(seed)
    mask = ndi.gaussian_filter(rng.random((size, size)), 2) > 0.5
    truth, n = ndi.label(mask)
    pred, _ = ndi.label(np.roll(mask, 1, axis=1))
    return truth, pred, n


def dense_baseline(truth, pred, thresholds):
    from scipy.optimize import linear_sum_assignment
    from skimage.metrics import contingency_table

    table = contingency_table(truth, pred).toarray()[1:, 1:].astype(np.float64)
    area_t = np.bincount(truth.ravel())[1:]
    area_p = np.bincount(pred.ravel())[1:]
    iou = table / (area_t[:, None] + area_p[None, :] - table)
    tps = []
    for t in thresholds:
        # As StarDist: maximize the count of pairs above t, ties by IoU.
        cost = -(iou >= t).astype(np.float64) - iou / (min(iou.shape) + 1)
        rows, cols = linear_sum_assignment(cost)
        tps.append(int(np.count_nonzero(iou[rows, cols] >= t)))
    return tps


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def main(argv=None):
    from napari_binseg.evaluation import DEFAULT_THRESHOLDS, evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller cases only")
    args = parser.parse_args(argv)
    sizes = (512, 768) if args.quick else (512, 768, 1536)
    warm = blobs(64)[:2]
    evaluate(*warm)  # warm imports on both sides
    dense_baseline(*warm, DEFAULT_THRESHOLDS)
    print(f"{'case':>22} {'ours':>9} {'dense':>9} {'ours/dense':>10}")
    for size in sizes:
        truth, pred, n = blobs(size)
        ours_t, ours = median_time(partial(evaluate, truth, pred), args.repeats)
        base_t, base = median_time(
            partial(dense_baseline, truth, pred, DEFAULT_THRESHOLDS), args.repeats
        )
        assert ours["tp"].tolist() == base, (ours["tp"].tolist(), base)
        case = f"{size}x{size}, {n} nuclei"
        print(f"{case:>22} {ours_t * 1e3:7.1f}ms {base_t * 1e3:7.1f}ms {ours_t / base_t:10.3f}")


if __name__ == "__main__":
    main()
