"""Bundled U-Net against a candidate model on two sources, ``segment(image)`` defaults.

Pooled object F1 at IoU 0.5 (:func:`napari_binseg.evaluate`, pooled over images with
:func:`napari_binseg.evaluation.aggregate`) of ``segment(image, model)`` with default options
(``diameter="auto"``), for each model, side by side, on

- ``DSB val``: the bundled model's 55-image validation split of DSB 2018 (``validation_names``
  in the bundled ``config.json``, drawn by ``scripts/train_bundled.py``, seed 0);
- ``s-bsst265 held-out``: the odd rows of ``s-bsst265-train/index.csv`` (21 images), the
  half that ``benchmarks/bench_scale_sweep.py`` and ``scripts/finetune_multisource.py`` hold
  out (the even rows tuned the size rule and train the fine-tune).

Run::

    python benchmarks/eval_unet_sources.py --candidate RUN_DIR [--bundled MODEL_DIR]

``--bundled`` defaults to the package's ``nuclei`` model; ``--quick N`` uses the first N images
of each set; ``--bsst-train`` adds the s-bsst265 training half (not held out) as a third set.
The s-bsst265 sets are also scored per source kind (magnification and preparation columns of
its ``index.csv``: 20x tissue sections, 63x cytospins and grown cell lines).
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def bsst_split(data):
    """(training, held-out) names of s-bsst265-train: even and odd rows of its index.csv."""
    names = pd.read_csv(data / "s-bsst265-train" / "index.csv")["name"].tolist()
    return names[0::2], names[1::2]


def read_set(folder, names):
    return [
        (
            n,
            tifffile.imread(folder / "images" / f"{n}.tif"),
            tifffile.imread(folder / "labels" / f"{n}.tif"),
        )
        for n in names
    ]


def score(lm, items):
    """Per-image F1@0.5 tables of ``segment(image, lm)`` and the seconds they took."""
    import napari_binseg as nb

    t0 = time.perf_counter()
    tables = [
        nb.evaluate(truth, nb.segment(image, lm), thresholds=[0.5]) for _, image, truth in items
    ]
    return tables, round(time.perf_counter() - t0, 1)


def pooled_row(tables, seconds=None):
    """Pooled F1@0.5 row (tp, fp, fn, precision, recall, f1), mean per-image F1, seconds."""
    from napari_binseg.evaluation import aggregate

    pooled = aggregate(tables).iloc[0]
    return {
        "images": len(tables),
        "tp": int(pooled["tp"]),
        "fp": int(pooled["fp"]),
        "fn": int(pooled["fn"]),
        "precision": round(float(pooled["precision"]), 4),
        "recall": round(float(pooled["recall"]), 4),
        "F1": round(float(pooled["f1"]), 4),
        "mean F1/image": round(float(np.mean([t["f1"].iloc[0] for t in tables])), 4),
        "s": seconds,
    }


def source_kinds(data):
    """s-bsst265 image name -> its kind, e.g. '63x cellline grown' (from index.csv)."""
    index = pd.read_csv(data / "s-bsst265-train" / "index.csv")
    kinds = index["magnification"] + " " + index["preparation"]
    return dict(zip(index["name"], kinds, strict=True))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--bundled", default="nuclei", help="reference model (default: bundled)")
    p.add_argument("--candidate", default=None, help="candidate model folder")
    p.add_argument("--quick", type=int, default=0, help="first N images of each set (0: all)")
    p.add_argument("--bsst-train", action="store_true", help="also the s-bsst265 training half")
    a = p.parse_args(argv)
    if not (a.data / "dsb2018-train" / "index.csv").is_file():
        print(f"no data at {a.data}; pass --data DIR", file=sys.stderr)
        return 1
    import napari_binseg as nb

    models = {"bundled": nb.load_model(a.bundled)}
    if a.candidate:
        models["candidate"] = nb.load_model(a.candidate)
    ref = models["bundled"].config["postprocess"]["diameter"]
    for key, lm in models.items():
        d = lm.config["postprocess"].get("diameter")
        print(f"{key}: postprocess {json.dumps(lm.config['postprocess'])}")
        if d != ref:
            print(f"WARNING: {key} reference diameter {d} != bundled {ref}", file=sys.stderr)
    dsb_names = models["bundled"].config["training"]["validation_names"]
    train_half, held = bsst_split(a.data)
    sets = {
        "DSB val": (a.data / "dsb2018-train", dsb_names),
        "s-bsst265 held-out": (a.data / "s-bsst265-train", held),
    }
    if a.bsst_train:
        sets["s-bsst265 train half"] = (a.data / "s-bsst265-train", train_half)
    kinds = source_kinds(a.data)
    rows = []
    for set_name, (folder, names) in sets.items():
        items = read_set(folder, names[: a.quick] if a.quick else names)
        for key, lm in models.items():
            tables, seconds = score(lm, items)
            rows.append({"set": set_name, "model": key} | pooled_row(tables, seconds))
            r = rows[-1]
            print(
                f"{set_name} / {key}: F1 {r['F1']:.4f} ({r['images']} images, {r['s']} s)",
                flush=True,
            )
            if set_name.startswith("s-bsst265"):
                by_kind = {}
                for (name, _, _), table in zip(items, tables, strict=True):
                    by_kind.setdefault(kinds[name], []).append(table)
                for kind, group in sorted(by_kind.items()):
                    rows.append({"set": f"{set_name}: {kind}", "model": key} | pooled_row(group))
    table = pd.DataFrame(rows)
    print()
    print(table.to_string(index=False))
    if a.candidate:
        f1 = table.pivot(index="set", columns="model", values="F1")
        f1["diff"] = (f1["candidate"] - f1["bundled"]).round(4)
        print()
        print(f1.to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
