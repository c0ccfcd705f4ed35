"""Speed of the cell counter against the scikit-image pipeline, printed as a ratio in one run.

Both sides label a mask, drop small objects and measure area, centroid and mean intensity:

- scikit-image: ``label`` + ``remove_small_objects`` + ``regionprops_table``;
- ours: ``count_cells(mask, image, split_touching=False, fill_holes=False, min_size=...)``,
  whose table also holds min/max intensity, equivalent diameter and bounding boxes.

Cases: a 4096x4096 mask with about 50k objects and a 64x1024x1024 mask. The cost of the
touching-nuclei split (``split_touching=True``) and of hole filling is reported separately.
Medians of ``--repeats`` runs; machines are noisy, compare the ratios.

Last, the whole default count (``count_cells(threshold(image), image=image)``: size estimate,
split, hole filling) against plain Otsu + ``label`` + ``regionprops_table`` on 1024x1024
synthetic nuclei, printed as a ratio of wall times and of CPU times (``--default-only`` runs
just that; on a shared machine the CPU-time ratio is the steadier one).

Run: ``python benchmarks/bench_count.py [--repeats 3] [--quick] [--default-only]``
"""

import argparse
import time

import numpy as np
from scipy import ndimage as ndi


def blobs_2d(shape=(4096, 4096), n=70_000, radius=3.5, seed=0):
    """Random discs (touching ones merge), and an intensity image brighter inside them."""
    rng = np.random.default_rng(seed)
    seeds = np.ones(shape, bool)
    seeds[rng.integers(0, shape[0], n), rng.integers(0, shape[1], n)] = False
    mask = ndi.distance_transform_edt(seeds) <= radius
    image = rng.integers(0, 200, shape, dtype=np.uint16) + mask.astype(np.uint16) * 800
    return mask, image


def blobs_3d(shape=(64, 1024, 1024), seed=0):
    """Smoothed noise thresholded into blobs of a few hundred voxels."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(shape, dtype=np.float32)
    smooth = ndi.gaussian_filter(noise, 2.5)
    mask = smooth > 2.0 * smooth.std()
    image = (smooth * 1000 + 2000).clip(0, 65535).astype(np.uint16)
    return mask, image


def skimage_pipeline(mask, image, min_size):
    from skimage.measure import label, regionprops_table
    from skimage.morphology import remove_small_objects

    labels = label(mask)
    # scikit-image 0.26: max_size removes objects <= max_size; we keep sizes >= min_size.
    labels = remove_small_objects(labels, max_size=min_size - 1)
    return regionprops_table(
        labels, image, properties=("label", "area", "centroid", "intensity_mean")
    )


def ours(mask, image, min_size, **kw):
    from napari_binseg import count_cells

    options = dict(split_touching=False, fill_holes=False)
    options.update(kw)
    return count_cells(mask, image, min_size=min_size, **options)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), result


def median_cpu(fn, repeats):
    """Median CPU seconds of the process (all threads): steadier than wall time on a loaded
    machine, where wall time also counts the time other processes hold the cores."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def run_case(mask, image, *, min_size, repeats):
    """Time one mask both ways and print the ratio, then the costs of fill and split."""
    name = f"{mask.ndim}D " + "x".join(map(str, mask.shape))
    t_ours, (labels, table) = median_time(lambda: ours(mask, image, min_size), repeats)
    t_sk, ref = median_time(lambda: skimage_pipeline(mask, image, min_size), max(1, repeats - 1))
    assert len(table) == len(ref["label"]), (len(table), len(ref["label"]))
    # Same objects (numbering orders may differ): compare sorted measurements.
    np.testing.assert_allclose(np.sort(table["mean_intensity"]), np.sort(ref["intensity_mean"]))
    print(f"{name}: {len(table)} objects, {mask.mean():.1%} foreground")
    print(f"  ours {t_ours:.3f} s   scikit-image {t_sk:.3f} s   ratio {t_sk / t_ours:.1f}x")
    t_fill, _ = median_time(lambda: ours(mask, image, min_size, fill_holes=True), 1)
    print(f"  with fill_holes=True: {t_fill:.3f} s (+{t_fill - t_ours:.3f} s)")
    # The split is a watershed: on 3D, time it on a 16-slice part of the stack.
    part = slice(None) if mask.ndim == 2 else slice(0, 16)
    sub_mask, sub_image = mask[part], image[part]
    t_base, _ = median_time(lambda: ours(sub_mask, sub_image, min_size), 1)
    t_split, (split_labels, _) = median_time(
        lambda: ours(sub_mask, sub_image, min_size, split_touching=True), 1
    )
    where = "" if mask.ndim == 2 else f" (on {'x'.join(map(str, sub_mask.shape))})"
    print(
        f"  with split_touching=True{where}: {t_split:.3f} s (+{t_split - t_base:.3f} s), "
        f"{int(split_labels.max())} objects"
    )


def default_count_case(repeats, sizes=((1024, 1024, 10.0), (1024, 1024, 40.0))):
    """The whole default classic count against the plain scikit-image pipeline, as a ratio.

    Ours: ``count_cells(threshold(image), image=image)`` with its defaults (nucleus size
    estimate, scale-aware minimum size, touching-nuclei split, hole filling). Plain:
    ``threshold_otsu`` + ``label`` + ``regionprops_table`` (area, centroid, mean intensity),
    which neither splits nor fills. Synthetic nuclei (radius 10 and 40 px, many touching).
    """
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops_table

    from napari_binseg import count_cells, threshold
    from napari_binseg.synthetic import synthetic_nuclei

    print("default count vs plain Otsu + label + regionprops_table (ratio > 1: ours faster)")
    for h, w, radius in sizes:
        image, truth = synthetic_nuclei((h, w), radius=radius, seed=0)

        def plain(image=image):
            lab = label(image > threshold_otsu(image))
            return regionprops_table(
                lab, image, properties=("label", "area", "centroid", "intensity_mean")
            )

        def default(image=image):
            return count_cells(threshold(image), image=image)

        default()  # compile the numba kernels outside the timing
        t_ours, (labels, table) = median_time(default, repeats)
        t_plain, ref = median_time(plain, repeats)
        c_ours, c_plain = median_cpu(default, repeats), median_cpu(plain, repeats)
        mp = h * w / 1e6
        print(
            f"  {h}x{w}, nuclei radius {radius:g} px: ours {t_ours * 1e3:.0f} ms "
            f"({mp / t_ours:.1f} MP/s, {len(table)} objects for {int(truth.max())} nuclei, "
            f"diameter {table.attrs.get('diameter') or 0:.1f} px), plain {t_plain * 1e3:.0f} ms "
            f"({mp / t_plain:.1f} MP/s, {len(ref['label'])} objects): ratio {t_plain / t_ours:.2f}"
        )
        print(
            f"    CPU time: ours {c_ours * 1e3:.0f} ms, plain {c_plain * 1e3:.0f} ms: "
            f"ratio {c_plain / c_ours:.2f}"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1024x1024 and 16x512x512")
    parser.add_argument("--default-only", action="store_true", help="only the default count")
    args = parser.parse_args(argv)
    if args.default_only:
        default_count_case(max(args.repeats, 5))
        return
    import cc3d  # noqa: F401  (import cost outside the timings)
    import skimage.measure  # noqa: F401
    import skimage.segmentation  # noqa: F401

    ours(np.ones((4, 4), bool), None, 0, split_touching=True)  # warm imports
    cases = [
        lambda: blobs_2d((1024, 1024), 4_400) if args.quick else blobs_2d(),
        lambda: blobs_3d((16, 512, 512)) if args.quick else blobs_3d(),
    ]
    min_size = 10
    print(
        f"label + remove small objects (< {min_size} px) + area, centroid, mean intensity; "
        f"median of {args.repeats}"
    )
    for make in cases:
        run_case(*make(), min_size=min_size, repeats=args.repeats)
    default_count_case(max(args.repeats, 5))


if __name__ == "__main__":
    main()
