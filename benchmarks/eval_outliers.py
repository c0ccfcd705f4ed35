"""The default threshold's bright-outlier rule (``ignore_bright_outliers``) on real images.

1. Every image of ``../shared/data/s-bsst265-train`` and ``dsb2018-train`` as it is (uint8),
   scaled to 16 bits (x64) and as float32 (/255): which images does the rule change, and
   the object F1 at IoU 0.5 of the default count (``count_cells(threshold(image))``) with the
   rule off -> on for those.
2. The same images with ten saturated 4x4 specks added away from the nuclei (uint8: 255,
   16-bit: 65535): on how many is plain Otsu pulled away from the clean image's threshold,
   on how many does the rule give it back exactly, and the mean F1 over the pulled images
   (clean image / specks, rule off / specks, rule on).

No parameter is tuned here; the rule's limits are in ``napari_binseg.background``.
Run: ``python benchmarks/eval_outliers.py [--every N]`` (every Nth DSB image; default 1).
"""

import argparse
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi

from napari_binseg import count_cells, evaluate, threshold_value

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEPTHS = {
    "uint8": lambda im: im,
    "16-bit": lambda im: im.astype(np.uint16) * 64,
    "float32": lambda im: im.astype(np.float32) / 255,
}


def images(every):
    for folder in ("s-bsst265-train", "dsb2018-train"):
        root = DATA / folder
        names = sorted(p.name for p in (root / "images").glob("*.tif"))
        for name in names if folder.startswith("s-") else names[::every]:
            yield (
                folder.removesuffix("-train"),
                name,
                tifffile.imread(root / "images" / name),
                tifffile.imread(root / "labels" / name),
            )


def f1(image, truth, t):
    labels = count_cells((image > t).astype(np.uint8), image=image)[0]
    return float(evaluate(truth, labels, thresholds=[0.5])["f1"].iloc[0])


def with_specks(image, truth, rng, value, k=10, size=4):
    """``k`` specks of ``size`` x ``size`` pixels at ``value``, 10 px or more from any nucleus."""
    out = image.copy()
    taken = ndi.binary_dilation(truth > 0, iterations=10)
    placed = 0
    for _ in range(10000):
        y, x = rng.integers(0, np.array(image.shape) - size)
        if not taken[y : y + size, x : x + size].any():
            out[y : y + size, x : x + size] = value
            taken[max(0, y - size) : y + 2 * size, max(0, x - size) : x + 2 * size] = True
            placed += 1
            if placed == k:
                break
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=1, help="every Nth DSB image")
    args = ap.parse_args()
    data = list(images(args.every))
    print(f"1. Real images as they are ({len(data)}): threshold changed by the rule")
    for depth, convert in DEPTHS.items():
        changed = []
        for _, name, image, truth in data:
            image = convert(image)
            on = threshold_value(image)
            off = threshold_value(image, ignore_bright_outliers=False)
            if on != off:
                changed.append(f"{name} {f1(image, truth, off):.3f} -> {f1(image, truth, on):.3f}")
        print(f"  {depth}: {len(changed)} changed" + "".join(f"\n    {c}" for c in changed))

    print("2. Ten saturated 4x4 specks added: pulled / given back exactly; mean F1 over pulled")
    for depth, value in (("uint8", 255), ("16-bit", 65535)):
        for source in ("s-bsst265", "dsb2018"):
            rng = np.random.default_rng(0)
            pulled = back = 0
            scores = []
            for src, _, image, truth in data:
                if src != source:
                    continue
                image = DEPTHS[depth](image)
                dirty = with_specks(image, truth, rng, value)
                clean = threshold_value(image)
                off = threshold_value(dirty, ignore_bright_outliers=False)
                if off == clean:
                    continue
                on = threshold_value(dirty)
                pulled += 1
                back += on == clean
                scores.append(
                    (f1(image, truth, clean), f1(dirty, truth, off), f1(dirty, truth, on))
                )
            mean = np.mean(scores, axis=0) if scores else [np.nan] * 3
            print(
                f"  {source} {depth}: pulled {pulled}, given back {back}; F1 clean {mean[0]:.3f}, "
                f"specks off {mean[1]:.3f}, specks on {mean[2]:.3f}"
            )


if __name__ == "__main__":
    main()
