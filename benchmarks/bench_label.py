"""Speed of the run labeller (``morphology.label``) against cc3d and scikit-image, in one run.

Masks: 1024x1024 random discs (radius 10 and 40, ~30% foreground, touching ones merge), and
a 64x256x256 stack of smoothed-noise blobs; 4 and 8 (6 and 26) connectivity. Each labeller
runs ``--repeats`` times and the best time is kept; the table shows the times and the ratios
runs / cc3d and runs / skimage (machines are noisy: compare the ratios). Every result is
checked against ``skimage.measure.label`` (``equal``); cc3d's 8-connected labels of binary
input can differ from it (connected-components-3d 4.1.1 labels some background pixels).

Measured (2-core VM, shared; runs / cc3d, runs / skimage):

===========================  =========  =========
mask, connectivity           / cc3d     / skimage
===========================  =========  =========
discs r=10, 4                0.93       0.23
discs r=10, 8                1.04       0.42
discs r=40, 4                0.80       0.30
discs r=40, 8                0.76       0.29
blobs 64x256x256, 6          1.00       0.31
blobs 64x256x256, 26         1.28       0.24
===========================  =========  =========

Run: ``python benchmarks/bench_label.py [--repeats 7]``
"""

# ruff: noqa: B023 (every lambda is called at once, inside its loop)
import argparse
import time

import numpy as np
from scipy import ndimage as ndi


def discs(size=1024, radius=10, fraction=0.3, seed=0):
    """Random discs of one radius covering about ``fraction`` of a square (bool)."""
    rng = np.random.default_rng(seed)
    seeds = np.ones((size, size), bool)
    n = int(size * size * fraction / (np.pi * radius**2))
    seeds[rng.integers(0, size, n), rng.integers(0, size, n)] = False
    return ndi.distance_transform_edt(seeds) <= radius


def blobs_3d(shape=(64, 256, 256), seed=0):
    rng = np.random.default_rng(seed)
    return ndi.gaussian_filter(rng.random(shape, np.float32), 2.0) > 0.52


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    import cc3d
    from skimage.measure import label as sk_label

    from napari_binseg.morphology import label, resolve_connectivity

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    cases = [(f"discs r={r}", discs(radius=r), c) for r in (10, 40) for c in (4, 8)]
    cases += [("blobs 64x256x256", blobs_3d(), c) for c in (6, 26)]
    print(f"{'mask':18}{'conn':>5}{'runs ms':>9}{'cc3d ms':>9}{'skimage ms':>12}"
          f"{'/ cc3d':>8}{'/ skimage':>11}  equal")  # fmt: skip
    for name, mask, conn in cases:
        rank = resolve_connectivity(conn, mask.ndim)[0]
        equal = np.array_equal(label(mask, conn)[0], sk_label(mask, connectivity=rank))
        ours = best_time(lambda: label(mask, conn), args.repeats)
        theirs = best_time(
            lambda: cc3d.connected_components(mask, connectivity=conn, binary_image=True),
            args.repeats,
        )
        sk = best_time(lambda: sk_label(mask, connectivity=rank), max(1, args.repeats // 2))
        print(
            f"{name:18}{conn:5}{ours * 1e3:9.1f}{theirs * 1e3:9.1f}{sk * 1e3:12.1f}"
            f"{ours / theirs:8.2f}{ours / sk:11.2f}  {equal}"
        )


if __name__ == "__main__":
    main()
