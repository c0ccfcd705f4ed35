"""Bit-identical outputs of this tree and a reference tree (before a refactor).

Runs the same cases twice in subprocesses, once importing ``napari_binseg`` from this checkout
and once from ``--base`` (an older checkout's ``src``), and compares every label image, mask,
threshold and table exactly (dtypes, values, column order, ``attrs``). Cases: threshold (every
method and scope, sigma, invert, fill holes, min size; numpy and dask; uint8/uint16/int16/
float32 with NaN/float64; 2D, 3D, 4D), count_cells, measure_objects, the chunked labeler,
evaluate / match_objects, and the U-Net post-processing, on the packaged samples and synthetic
arrays.

Run: ``python benchmarks/check_identical.py [--base /work/base/src]``; exit 1 on a difference.
"""

# ruff: noqa: B023 (every lambda is called at once, inside its loop)
import argparse
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]


def _inputs():
    import tifffile
    from scipy import ndimage as ndi

    data = HERE / "src" / "napari_binseg" / "data"
    samples = {p.stem: tifffile.imread(p) for p in sorted(data.glob("nuclei_*[!s].tif"))}
    truths = {p.stem: tifffile.imread(p) for p in sorted(data.glob("nuclei_*_labels.tif"))}
    rng = np.random.default_rng(0)
    smooth = ndi.gaussian_filter(rng.standard_normal((6, 96, 112)).astype(np.float32), 3)
    vol = (smooth * 4000 + 20000).clip(0, 65535).astype(np.uint16)
    nan = (smooth * 10).astype(np.float32)
    nan[0, :3, :5] = np.nan
    nan[2] = np.nan  # one all-NaN plane
    images = {
        **samples,
        "vol_u16": vol,
        "vol_i16": (vol.astype(np.int32) - 20000).astype(np.int16),
        "vol_f32_nan": nan,
        "vol_f64": smooth.astype(np.float64),
        "tzyx_u8": (vol[:4].reshape(2, 2, 96, 112) // 256).astype(np.uint8),
    }
    return images, truths


def _error_map(truth, pred, iou):
    """The error map: the core's, or (before it moved there) the widget's algorithm."""
    try:
        from napari_binseg.evaluation import error_map
    except ImportError:
        from napari_binseg.evaluation import match_objects

        m = match_objects(truth, pred, threshold=iou)
        fp = np.isin(m["prediction"], m["false_positives"]).astype(np.uint8)
        fn = np.isin(m["ground_truth"], m["false_negatives"]).astype(np.uint8)
        return fp * 1 + fn * 2, len(m["false_positives"]), len(m["false_negatives"])
    return error_map(truth, pred, iou_threshold=iou)


def _apply(image, t, **kw):
    """A mask at a given threshold: the preview's core function, or a manual threshold."""
    try:
        from napari_binseg.thresholding import apply_threshold
    except ImportError:
        import napari_binseg as nb

        return nb.threshold(image, "manual", value=float(t), **kw)
    return apply_threshold(image, t, **kw)


def compute():
    """Every case's result, keyed by a readable name."""
    import dask.array as da
    from scipy import ndimage as ndi

    import napari_binseg as nb
    from napari_binseg import _chunked_label
    from napari_binseg.evaluation import match_objects
    from napari_binseg.unet._postprocess import probabilities_to_labels

    images, truths = _inputs()
    out = {}

    def record(name, fn):
        try:
            out[name] = fn()
        except Exception as exc:  # an error is a result too: it must stay the same
            out[name] = ("error", type(exc).__name__, str(exc))

    methods = [m for m in nb.THRESHOLD_METHODS if m != "manual"]
    for name, image in images.items():
        scopes = ["image", "slice"] + (["frame"] if image.ndim >= 3 else [])
        for method in methods:
            for scope in scopes:
                record(
                    f"threshold/{name}/{method}/{scope}",
                    lambda: nb.threshold(image, method, scope=scope, return_thresholds=True),
                )
        record(f"value/{name}/otsu-sigma", lambda: nb.threshold_value(image, sigma=1.5))
        record(
            f"threshold/{name}/li-post",
            lambda: nb.threshold(
                image, "li", sigma=1.0, invert=True, fill_holes=True, min_size=20,
                return_thresholds=True,
            ),
        )  # fmt: skip
        record(f"threshold/{name}/manual", lambda: nb.threshold(image, "manual", value=40))
        plane = image[(0,) * (image.ndim - 2)]
        record(
            f"preview/{name}",
            lambda: _apply(plane, 0.3, sigma=1.0, invert=True, fill_holes=True, min_size=5),
        )
        lazy = da.from_array(image, chunks=(1,) * (image.ndim - 2) + (64, 64))
        for method in ("otsu", "triangle", "multiotsu", "mean"):
            record(
                f"dask/{name}/{method}",
                lambda: tuple(
                    np.asarray(x)
                    for x in nb.threshold(lazy, method, scope="slice", return_thresholds=True)
                ),
            )
        record(
            f"dask/{name}/post",
            lambda: nb.threshold(lazy, "otsu", sigma=1.0, fill_holes=True, min_size=10).compute(),
        )

    masks = {}
    for name in list(images)[:2]:
        masks[name] = (nb.threshold(images[name], sigma=1.0), images[name])
    masks["vol_u16"] = (nb.threshold(images["vol_u16"], scope="slice"), images["vol_u16"])
    for name, (mask, image) in masks.items():
        # Explicit sizes: 0.1's defaults, so a new default elsewhere does not hide a change here.
        for kw in (
            {"split_touching": False, "fill_holes": False},
            {"split_touching": False, "fill_holes": True, "exclude_border": True},
            {"split_touching": False, "connectivity": 1, "max_size": 400, "min_size": 3.0,
             "spacing": (0.5,) * mask.ndim},
            {"split_touching": True},
            {"split_touching": "intensity", "min_size": 15, "exclude_border": True},
        ):  # fmt: skip
            kw = {"min_size": 0, **kw}
            record(f"count/{name}/{kw}", lambda: nb.count_cells(mask, image, **kw)[:2])
        record(
            f"count/{name}/time",
            lambda: nb.count_cells(mask[None], image[None], time_axis=0, min_size=0)[:2],
        )
        components = ndi.label(mask)[0]
        record(f"measure/{name}", lambda: nb.measure_objects(components, image))
        record(
            f"measure/{name}/spacing",
            lambda: nb.measure_objects(mask, image.astype(np.float32), spacing=(2.0,) * mask.ndim),
        )
        for time_ in (False, True) if mask.ndim == 3 else (False,):
            lazy_mask = da.from_array(mask, chunks=(2,) * (mask.ndim - 2) + (50, 70))
            lazy_image = da.from_array(image, chunks=lazy_mask.chunks)

            def chunked():
                labels, table = _chunked_label.label_and_measure(
                    lazy_mask, lazy_image, spacing=np.ones(mask.ndim - time_),
                    connectivity=8 if mask.ndim - time_ == 2 else 26, min_size=5,
                    exclude_border=True, time=time_,
                )  # fmt: skip
                return labels.compute(), table

            record(f"chunked/{name}/{time_}", chunked)

    for name, truth in truths.items():
        image = images[name.removesuffix("_labels")]
        pred = ndi.label(nb.threshold(image, sigma=1.0))[0]
        record(f"evaluate/{name}", lambda: nb.evaluate(truth, pred))
        record(f"evaluate/{name}/low", lambda: nb.evaluate(truth, pred, thresholds=[0.1, 0.3]))
        record(f"evaluate/{name}/masks", lambda: nb.evaluate(truth > 0, pred > 0))
        record(
            f"evaluate/{name}/time",
            lambda: nb.evaluate(np.stack([truth, truth]), np.stack([pred, truth]), time_axis=0),
        )
        record(f"match/{name}", lambda: match_objects(truth, pred, threshold=0.3))
        record(f"pixel/{name}", lambda: nb.pixel_scores(truth, pred))
        for iou in (0.3, 0.5, 0.8):
            record(f"errors/{name}/{iou}", lambda: _error_map(truth, pred, iou))

    rng = np.random.default_rng(1)
    fg = ndi.gaussian_filter(rng.random((200, 240)), 4)
    fg = (fg - fg.min()) / (fg.max() - fg.min())
    centre = ndi.gaussian_filter(rng.random((200, 240)), 2)
    centre = (centre - centre.min()) / (centre.max() - centre.min())
    for min_size in (1, 8, 40):
        record(
            f"postprocess/{min_size}",
            lambda: probabilities_to_labels(fg, centre, seed_threshold=0.6, min_size=min_size),
        )
    return out


def _same(a, b):
    """``b`` (this tree) equals ``a`` (the reference) exactly."""
    import pandas as pd

    if type(a) is not type(b):
        return False
    if isinstance(a, pd.DataFrame):
        if list(a.columns) != list(b.columns) or list(a.dtypes) != list(b.dtypes):
            return False
        # attrs: every key of the reference (``a``) unchanged; new keys are new metadata.
        if any(k not in b.attrs or not _same(v, b.attrs[k]) for k, v in a.attrs.items()):
            return False
        return all(
            np.array_equal(a[c].to_numpy(), b[c].to_numpy(), equal_nan=a[c].dtype.kind == "f")
            for c in a.columns
        )
    if isinstance(a, np.ndarray):
        return (
            a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
        )
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and np.isnan(a):
        return np.isnan(b)
    return bool(a == b)


def _run(src, path):
    env = dict(os.environ, PYTHONPATH=str(src))
    code = (
        "import pickle, sys; sys.path.insert(0, sys.argv[1]); import check_identical as c; "
        "pickle.dump(c.compute(), open(sys.argv[2], 'wb'))"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), str(path)], env=env, check=True
    )
    with open(path, "rb") as f:
        return pickle.load(f)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="/work/base/src", help="reference source folder")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        before = _run(args.base, Path(tmp) / "before.pkl")
        after = _run(HERE / "src", Path(tmp) / "after.pkl")
    differ = [k for k in before if k not in after or not _same(before[k], after[k])]
    missing = [k for k in after if k not in before]
    errors = sum(
        isinstance(v, tuple) and len(v) == 3 and isinstance(v[0], str) for v in before.values()
    )
    print(f"{len(before)} cases ({errors} expected errors): {len(before) - len(differ)} identical")
    for k in differ:
        print("DIFFERENT:", k)
    for k in missing:
        print("only in this tree:", k)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
