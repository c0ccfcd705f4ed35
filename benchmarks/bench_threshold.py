"""Otsu threshold of a (Z, 1024, 1024) stack: napari_binseg vs scikit-image vs one read pass.

Run ``python benchmarks/bench_threshold.py`` (64 planes, as in issue 2) or ``--small``
(16 x 512 x 512) for a quick check. One run prints, for uint8 and uint16 and for the whole
stack ("image" scope) and per plane ("slice" scope): our time, scikit-image's, their ratio,
and our time over one read pass of the same array (``img.max()``); then the cost of the
bright-outlier rule where it fires (on/off). Medians of ``--repeat`` runs; the machine is
shared, so compare the ratios of one run rather than absolute times.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import skimage.filters as skf
import tifffile

from napari_binseg import threshold, threshold_value

SAMPLE = Path(__file__).parents[1] / "src/napari_binseg/data/nuclei_175dbb364bfefc95.tif"


def make_stack(planes, size, dtype):
    """Planes tiled from the real DSB 2018 sample, shifted per plane, with noise."""
    rng = np.random.default_rng(0)
    tile = tifffile.imread(SAMPLE).astype(np.float32)
    reps = (-(-size // tile.shape[0]) + 1, -(-size // tile.shape[1]) + 1)
    big = np.tile(tile, reps)
    stack = np.empty((planes, size, size), dtype)
    scale = 1.0 if dtype == np.uint8 else 16.0  # uint16: a 12-bit camera range
    for z in range(planes):
        y, x = (37 * z) % tile.shape[0], (53 * z) % tile.shape[1]
        plane = big[y : y + size, x : x + size] * scale
        plane += rng.normal(0, 2 * scale, (size, size)).astype(np.float32)
        stack[z] = np.clip(plane, 0, np.iinfo(dtype).max)
    return stack


def median_time(func, repeat):
    func()  # warm-up (numba compile or cache load, page faults)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="16 x 512 x 512 instead")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    planes, size = (16, 512) if args.small else (64, 1024)

    print(f"Otsu on {planes}x{size}x{size}; medians of {args.repeat} runs")
    header = f"{'case':<22}{'ours ms':>9}{'skimage ms':>12}{'skimage/ours':>14}{'ours/read':>11}"
    print(header)
    print("-" * len(header))
    for dtype in (np.uint8, np.uint16):
        stack = make_stack(planes, size, dtype)
        name = np.dtype(dtype).name
        # Same answers first: a benchmark of a wrong result is worthless (the sample has no
        # saturated debris, so the bright-outlier rule leaves scikit-image's Otsu).
        assert threshold_value(stack) == skf.threshold_otsu(stack)
        per_plane = np.array([skf.threshold_otsu(p) for p in stack], dtype=np.float64)
        np.testing.assert_array_equal(threshold_value(stack, scope="slice"), per_plane)

        read = median_time(stack.max, args.repeat)
        cases = [
            (
                "value, image",
                lambda stack=stack: threshold_value(stack),
                lambda stack=stack: skf.threshold_otsu(stack),
            ),
            (
                "value, slice",
                lambda stack=stack: threshold_value(stack, scope="slice"),
                lambda stack=stack: [skf.threshold_otsu(p) for p in stack],
            ),
            (
                "mask, image",
                lambda stack=stack: threshold(stack),
                lambda stack=stack: stack > skf.threshold_otsu(stack),
            ),
            (
                "mask, slice",
                lambda stack=stack: threshold(stack, scope="slice"),
                lambda stack=stack: np.stack([p > skf.threshold_otsu(p) for p in stack]),
            ),
        ]
        for label, ours, theirs in cases:
            t_ours = median_time(ours, args.repeat)
            t_sk = median_time(theirs, args.repeat)
            print(
                f"{name + ' ' + label:<22}{t_ours * 1e3:>9.1f}{t_sk * 1e3:>12.1f}"
                f"{t_sk / t_ours:>14.2f}{t_ours / read:>11.2f}"
            )
        print(f"{name + ' read pass':<22}{read * 1e3:>9.1f}")
    outlier_cost(size, args.repeat)


def outlier_cost(size, repeat):
    """Cost of ``ignore_bright_outliers`` on one plane with saturated specks, where it fires:
    nothing more to read for integers (the histogram is cut), one more pass over the values
    for float32 (those below the first threshold are binned again)."""
    print(f"\nignore_bright_outliers on one {size}x{size} plane with 40 saturated 4x4 specks")
    print(f"{'case':<22}{'on ms':>9}{'off ms':>12}{'on/off':>14}")
    plane = make_stack(1, size, np.uint16)[0]
    for y, x in np.random.default_rng(1).integers(0, size - 4, (40, 2)):
        plane[y : y + 4, x : x + 4] = 65535
    for name, data in (("uint16", plane), ("float32", plane.astype(np.float32))):
        info = threshold_value(data, return_info=True)[1]
        assert info["bright_outliers"], "the rule should fire on this plane"
        on = median_time(lambda data=data: threshold_value(data), repeat)
        off = median_time(
            lambda data=data: threshold_value(data, ignore_bright_outliers=False), repeat
        )
        print(f"{name:<22}{on * 1e3:>9.1f}{off * 1e3:>12.1f}{on / off:>14.2f}")


if __name__ == "__main__":
    main()
