"""How does the U-Net hold up on out-of-focus, noisy and unevenly lit copies of real images?

Each image of a set is degraded one way at a time, with its own random draw seeded by its
name (so every model sees the same copies):

- ``blur``: a Gaussian of 0.1-0.2x the image's median nucleus diameter (out of focus);
- ``noise``: Gaussian noise of 0.15-0.3x the nucleus contrast (median nucleus intensity minus
  median background), added;
- ``bg``: a linear ramp in a random direction of 0.5-1x the nucleus contrast, added.

Pooled object F1 at IoU 0.5 of ``segment()`` with its defaults (:mod:`eval_unet_sources`'s
scoring). Sets: ``dsb`` (the bundled model's DSB 2018 validation split), ``train`` and ``held``
(the even and odd rows of s-bsst265-train's index.csv).

Run: ``python benchmarks/eval_degraded.py [--model FOLDER] [--sets dsb,train,held]
[--kinds clean,blur,noise,bg]`` (~2 min on 2 CPU cores for the three sets and four kinds).
"""

import argparse
import sys
import zlib
from pathlib import Path

import numpy as np
from eval_unet_sources import DATA, bsst_split, pooled_row, read_set, score

KINDS = ("clean", "blur", "noise", "bg")


def degraded(name, image, truth, kind):
    """``image`` degraded by ``kind`` (float32; ``clean``: unchanged), drawn from a generator
    seeded by ``name``."""
    from scipy import ndimage as ndi

    from napari_binseg.unet.scale import median_diameter

    if kind == "clean":
        return image
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    im = image.astype(np.float32)
    contrast = float(np.median(im[truth > 0]) - np.median(im[truth == 0]))
    if kind == "blur":
        return ndi.gaussian_filter(im, median_diameter(truth) * rng.uniform(0.1, 0.2))
    if kind == "noise":
        sd = contrast * rng.uniform(0.15, 0.3)
        return im + rng.normal(0, sd, im.shape).astype(np.float32)
    h, w = im.shape
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * yy + np.sin(angle) * xx
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-9)
    return im + ramp * contrast * rng.uniform(0.5, 1.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--model", default="nuclei", help="model name or folder")
    p.add_argument("--sets", default="dsb,train,held")
    p.add_argument("--kinds", default=",".join(KINDS))
    p.add_argument("--quick", type=int, default=0, help="first N images of each set (0: all)")
    a = p.parse_args(argv)
    import napari_binseg as nb
    from napari_binseg.unet.network import model_config

    lm = nb.load_model(a.model)
    train_half, held = bsst_split(a.data)
    validation = model_config("nuclei")["training"]["validation_names"]
    sets = {
        "dsb": (a.data / "dsb2018-train", validation),
        "train": (a.data / "s-bsst265-train", train_half),
        "held": (a.data / "s-bsst265-train", held),
    }
    for s in a.sets.split(","):
        folder, names = sets[s]
        items = [
            (n, im, t)
            for n, im, t in read_set(folder, names[: a.quick] if a.quick else names)
            if im.ndim == 2  # one-channel images only: the degradations are per plane
        ]
        for kind in a.kinds.split(","):
            tables, seconds = score(lm, [(n, degraded(n, im, t, kind), t) for n, im, t in items])
            r = pooled_row(tables, seconds)
            print(
                f"{s} {kind}: F1 {r['F1']:.4f} (mean per image {r['mean F1/image']:.4f}; "
                f"tp {r['tp']} fp {r['fp']} fn {r['fn']}; {len(items)} images)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
