"""Does ``segment(diameter="auto")`` find the nucleus size at every magnification?

For images rescaled so that their nuclei span ~5 to ~400 pixels, pooled object F1 at IoU 0.5
(:func:`napari_binseg.evaluate`) of the bundled U-Net (or ``--model``)

- with its defaults (``diameter="auto"``: the size is estimated),
- with the true median nucleus diameter given (``diameter=D``),

and the estimate itself: its median ratio to the true diameter and its cost, timed inside the
same ``segment`` calls: the network passes that only served the estimate over the rest of
the run (the pass at the chosen scale, normalization and post-processing). "probe cost" counts
the 0.25x probe where its pass is not the result; "estimate cost" adds the full-size pass of
planes upsampled after it ("re-run": how many planes paid it; "looks": planes whose probe
was checked by a 0.125x look). Each image's first run is
timed (every network input shape is new to the runtime, which prepares each shape once: the
first image of a size in a user's folder; the process itself is warmed up once on a packaged
sample, as a session is after its first image); "warm" is the estimate cost of a second run of
the same image right after (shapes prepared: the following images of that size). Sets:

- ``dsb``: the bundled model's validation split of DSB 2018 (``config.json``), rescaled
  0.25x-8x (nuclei ~10-40 px at 1x, 60-320 px at 8x);
- ``bsst``: the held-out half of s-bsst265-train (odd rows of its ``index.csv``; the even
  rows chose the size rule's constants), rescaled 0.5x and 1x (nuclei ~20 px on the 20x
  tissue sections, 90-190 px on the 63x images).

Run: ``python benchmarks/bench_scale_sweep.py`` (short: 4 DSB images, 2 s-bsst265 images
spread over the held-out list,
scales 0.25/1/3/5 and 0.5/1), ``--full`` (all images and scales; ~25 min on 2 CPU cores), or
choose with ``--dsb N --bsst N --dsb-scales 0.25,0.5,... --bsst-scales 0.5,1``; ``--model
PATH`` sweeps another model folder. Images are rescaled with antialiased bilinear
interpolation, labels with nearest neighbour.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FULL_DSB_SCALES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
FULL_BSST_SCALES = (0.5, 0.75, 1.0)


def bsst_split(data):
    """(tuning, held-out) names of s-bsst265-train: even and odd rows of its index.csv."""
    names = pd.read_csv(data / "s-bsst265-train" / "index.csv")["name"].tolist()
    return names[0::2], names[1::2]


def rescaled(image, labels, factor):
    from napari_binseg.unet.scale import labels_resized, resize

    if factor == 1.0:
        return image, labels
    shape = tuple(max(1, round(s * factor)) for s in image.shape)
    return resize(image.astype(np.float32), shape), labels_resized(labels, shape)


def run_set(name, folder, names, scales, lm, log=print):
    from napari_binseg import evaluate
    from napari_binseg.unet import segment
    from napari_binseg.unet.scale import median_diameter

    rows = []
    items = [
        (
            tifffile.imread(folder / "images" / f"{n}.tif"),
            tifffile.imread(folder / "labels" / f"{n}.tif"),
        )
        for n in names
    ]
    for factor in scales:
        acc = {"auto": np.zeros(3), "true": np.zeros(3)}
        ratios, rerun, looks = [], 0, 0
        cold, warm = np.zeros(3), np.zeros(3)  # estimate, probe, rest (seconds)
        for image, truth in items:
            image, truth = rescaled(image, truth, factor)
            true_d = median_diameter(truth)
            labels, info = segment(image, lm, return_info=True)
            again = segment(image, lm, return_info=True)[1]
            for total, run in ((cold, info), (warm, again)):
                total += (
                    run["estimate_seconds"],
                    run["probe_seconds"],
                    run["seconds"] - run["estimate_seconds"],
                )
            given = segment(image, lm, diameter=true_d)
            for key, pred in (("auto", labels), ("true", given)):
                row = evaluate(truth, pred, thresholds=0.5, label_masks=False).iloc[0]
                acc[key] += (row["tp"], row["n_true"], row["n_pred"])
            if info["diameter"]:
                ratios.append(info["diameter"] / true_d)
            rerun += info["remeasured"]
            looks += info["looked"]
        f1 = {k: 2 * v[0] / max(v[1] + v[2], 1) for k, v in acc.items()}
        rows.append(
            {
                "set": name,
                "scale": factor,
                "images": len(items),
                "nuclei": int(acc["true"][1]),
                "F1 auto": round(f1["auto"], 3),
                "F1 true D": round(f1["true"], 3),
                "diff": round(f1["auto"] - f1["true"], 3),
                "estimate/true D": round(float(np.median(ratios)), 2) if ratios else None,
                "probe cost": round(cold[1] / max(cold[2], 1e-9), 2),
                "estimate cost": round(cold[0] / max(cold[2], 1e-9), 2),
                "warm": round(warm[0] / max(warm[2], 1e-9), 2),
                "re-run": rerun,
                "looks": looks,
            }
        )
        log(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1))
    return rows


def warm_up(lm):
    """Segment a packaged sample at 0.25x and 1x once before timing: the process's compiled
    kernels (histogram, labeller, distance transform) load on first use, a one-time cost
    of a session that would otherwise fall on the first image of the first scale only."""
    from napari_binseg.unet import segment
    from napari_binseg.unet.scale import resize

    package = Path(__file__).resolve().parents[1] / "src" / "napari_binseg"
    image = tifffile.imread(package / "data" / "nuclei_003cee89357d9fe1.tif").astype(np.float32)
    segment(image, lm)
    segment(resize(image, (64, 64)), lm)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--full", action="store_true", help="all images and scales")
    parser.add_argument("--dsb", type=int, default=4, help="DSB validation images (0: none)")
    parser.add_argument("--bsst", type=int, default=2, help="held-out s-bsst265 images")
    parser.add_argument("--dsb-scales", default="0.25,1,3,5")
    parser.add_argument("--bsst-scales", default="0.5,1")
    parser.add_argument("--model", default="nuclei", help="model name or folder")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = parser.parse_args(argv)
    if not (args.data / "dsb2018-train" / "index.csv").is_file():
        print(f"no data at {args.data}; pass --data DIR", file=sys.stderr)
        return 1
    from napari_binseg.unet.network import load_model

    lm = load_model(args.model)
    dsb_names = load_model("nuclei").config["training"]["validation_names"]
    held = bsst_split(args.data)[1]
    dsb_scales = [float(s) for s in args.dsb_scales.split(",") if s]
    bsst_scales = [float(s) for s in args.bsst_scales.split(",") if s]
    if args.full:
        dsb_scales, bsst_scales = FULL_DSB_SCALES, FULL_BSST_SCALES
        args.dsb, args.bsst = len(dsb_names), len(held)
    warm_up(lm)
    t0 = time.perf_counter()
    rows = []
    if args.dsb:
        rows += run_set(
            "DSB val", args.data / "dsb2018-train", dsb_names[: args.dsb], dsb_scales, lm
        )
    if args.bsst:
        rows += run_set(
            "s-bsst265 held-out",
            args.data / "s-bsst265-train",
            held[:: max(1, len(held) // args.bsst)][: args.bsst],
            bsst_scales,
            lm,
        )
    table = pd.DataFrame(rows)
    print()
    if args.markdown:
        cells = [list(table.columns)] + table.astype(str).values.tolist()
        print("\n".join("| " + " | ".join(map(str, row)) + " |" for row in cells[:1]))
        print("|" + "---|" * len(table.columns))
        print("\n".join("| " + " | ".join(row) + " |" for row in cells[1:]))
    else:
        print(table.to_string(index=False))
    print(f"\n{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
