"""Train or fine-tune a U-Net on a user's own annotated images (the "Train U-Net" workflow).

:func:`train` takes (image, labels) pairs, e.g. napari layers where nuclei were painted on some
planes, and runs the loop of :mod:`napari_binseg.unet.training` (same sampler, targets, losses
and validation as the bundled model's training) with the options of a :class:`TrainConfig`.
The result is a folder :func:`napari_binseg.load_model` reads (``model.safetensors``,
``config.json``, ``MODEL_CARD.md``) and, on request, a MONAI bundle (:func:`export_bundle`).
Checkpoints hold tensors (safetensors) and JSON only, never pickled objects.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from .training import AUGMENTATIONS, LOSSES

#: Network presets: MONAI classes with literal arguments (2D, one input, two sigmoid outputs).
ARCHITECTURES = {
    "mobile": {"name": "UNet", "kwargs": {"channels": [8, 16, 32, 64], "strides": [2, 2, 2]}},
    "compact": {"name": "UNet", "kwargs": {"channels": [16, 32, 64, 128], "strides": [2, 2, 2]}},
    "default": {
        "name": "UNet",
        "kwargs": {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2]},
    },
    "large": {
        "name": "UNet",
        "kwargs": {
            "channels": [32, 64, 128, 256, 512],
            "strides": [2, 2, 2, 2],
            "num_res_units": 2,
        },
    },
    "efficientnet-b0": {
        "name": "FlexibleUNet",
        "kwargs": {"backbone": "efficientnet-b0", "pretrained": False},
    },
}
_UNET_DEFAULTS = {"num_res_units": 0, "norm": "batch", "act": "relu"}


@dataclasses.dataclass
class TrainConfig:
    """Options of a training run; JSON-serializable (:meth:`to_dict`, :meth:`from_dict`).

    Parameters
    ----------
    init : str or None
        Model whose weights start the run: ``"nuclei"`` (the bundled model, fine-tuning) or a
        model folder; None trains from scratch.
    architecture : str or dict or None
        A preset of :data:`ARCHITECTURES` (``"mobile"``, ``"compact"``, ``"default"``,
        ``"large"``, ``"efficientnet-b0"``) or a ``{"name", "kwargs"}`` MONAI network dict.
        None: the network of ``init``, else ``"default"``. Must match ``init`` when both given.
    loss : {"dice+ce", "dice", "ce", "focal"}
    epochs, steps_per_epoch : int
        Validation (and a checkpoint) after every epoch of ``steps_per_epoch`` batches.
    minutes : float or None
        Time budget: training stops at it (the learning-rate schedule then follows time).
    lr : float
        Peak learning rate of AdamW (warm-up, then cosine decay).
    patch_size, batch_size : int
        Square training crops, a multiple of the network's divisor (the product of a UNet's
        strides: 8 for mobile and compact, 16 for default and large; 32 for efficientnet-b0).
    augment : tuple of str
        Subset of ``("scale", "rotations", "flips", "intensity", "gamma", "noise")``.
    val_fraction : float
        Share of the annotated planes held out for validation (when no validation pair is
        given). With a single plane, validation uses the training plane.
    device : {"auto", "cpu", "cuda", "mps"}
    seed : int
    threads : int or None
        torch CPU threads (None leaves torch's setting).
    """

    init: str | None = "nuclei"
    architecture: str | dict | None = None
    loss: str = "dice+ce"
    epochs: int = 20
    steps_per_epoch: int = 25
    minutes: float | None = None
    lr: float = 5e-4
    patch_size: int = 256
    batch_size: int = 4
    augment: tuple = AUGMENTATIONS
    val_fraction: float = 0.2
    device: str = "auto"
    seed: int = 0
    threads: int | None = None

    def __post_init__(self):
        self.augment = tuple(self.augment)
        self.validate()

    def validate(self):
        """Raise ValueError naming the first invalid option."""
        if self.init is not None and not isinstance(self.init, (str, Path)):
            raise ValueError(f"init must be 'nuclei', a model folder or None, got {self.init!r}")
        arch = self.architecture
        if isinstance(arch, str) and arch not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {list(ARCHITECTURES)}, got {arch!r}")
        if arch is not None and not isinstance(arch, (str, dict)):
            raise ValueError(f"architecture must be a preset name or a dict, got {arch!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {list(LOSSES)}, got {self.loss!r}")
        for name in ("epochs", "steps_per_epoch", "batch_size", "seed"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.patch_size, (int, np.integer)) or not 32 <= self.patch_size:
            raise ValueError(f"patch_size must be an integer >= 32, got {self.patch_size!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise ValueError(f"lr must be a number in (0, 1), got {self.lr!r}")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes must be positive or None, got {self.minutes!r}")
        unknown = set(self.augment) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(
                f"augment: unknown augmentation(s) {sorted(unknown)}; choose from {AUGMENTATIONS}"
            )
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction!r}")
        if self.device not in ("auto", "cpu", "cuda", "mps"):
            raise ValueError(f"device must be auto, cpu, cuda or mps, got {self.device!r}")
        if self.threads is not None and not (isinstance(self.threads, int) and self.threads > 0):
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")

    @property
    def steps(self):
        """Total number of optimizer steps."""
        return self.epochs * self.steps_per_epoch

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["augment"] = list(self.augment)
        out["init"] = None if self.init is None else str(self.init)
        return out

    @classmethod
    def from_dict(cls, data):
        """A config from :meth:`to_dict` output; unknown keys raise ValueError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(
                f"unknown training option(s) {sorted(unknown)}; known: {sorted(names)}"
            )
        return cls(**data)


def _network(config, init_config):
    """The ``{"name", "kwargs"}`` network of a run: the preset, the init model's, or given."""
    arch = config.architecture
    if arch is None:
        return init_config["network"] if init_config else _network_from_preset("default")
    network = _network_from_preset(arch) if isinstance(arch, str) else arch
    if init_config and network != init_config["network"]:
        raise ValueError(
            f"architecture {arch!r} differs from the network of init={config.init!r} "
            f"({init_config['network']}); leave architecture unset to fine-tune, or set "
            "init=None to train from scratch"
        )
    return network


def _network_from_preset(name):
    preset = ARCHITECTURES[name]
    base = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2}
    extra = _UNET_DEFAULTS if preset["name"] == "UNet" else {}
    return {"name": preset["name"], "kwargs": base | extra | preset["kwargs"]}


# --- training data ------------------------------------------------------------------------------


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def annotated_planes(images, labels, *, name="pair"):
    """The annotated 2D planes of (image, labels) pairs, checked.

    Parameters
    ----------
    images, labels : array or list of arrays
        Images (2D, or stacks/time series whose last two axes are Y, X) and integer instance
        labels of the same shape. In a stack, planes without any label are not annotated and
        are skipped.
    name : str
        Used in error messages (``"pair 2: ..."``).

    Returns
    -------
    planes : list of (image, labels, source)
        2D arrays and a ``"pair i[, plane j]"`` description.

    Raises
    ------
    ValueError
        Different numbers of images and labels, RGB images, mismatched shapes, float labels,
        or no annotated plane.
    """
    images, labels = _as_list(images), _as_list(labels)
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} label images")
    if not images:
        raise ValueError("no training pairs given")
    planes = []
    for i, (image, lab) in enumerate(zip(images, labels, strict=True)):
        where = f"{name} {i}" if len(images) > 1 else name
        image, lab = np.asarray(image), np.asarray(lab)
        if image.ndim == lab.ndim + 1 and image.shape[-1] in (3, 4):
            raise ValueError(
                f"{where}: the image is RGB(A) (shape {image.shape}); train on one channel"
            )
        if image.shape != lab.shape:
            raise ValueError(
                f"{where}: image shape {image.shape} and labels shape {lab.shape} differ"
            )
        if image.ndim < 2:
            raise ValueError(f"{where}: images must be 2D or stacks of 2D planes")
        if lab.dtype.kind == "f":
            raise ValueError(
                f"{where}: labels are {lab.dtype} (floating point); instance labels must be "
                "integers (use a Labels layer, one value per nucleus)"
            )
        if lab.dtype.kind not in "biu":
            raise ValueError(f"{where}: labels of dtype {lab.dtype} are not integer labels")
        n_before = len(planes)
        flat_im = image.reshape((-1,) + image.shape[-2:])
        flat_lab = lab.reshape((-1,) + lab.shape[-2:])
        for j in range(flat_lab.shape[0]):
            plane = flat_lab[j]
            if not plane.any():
                continue
            if plane.dtype.kind == "b":
                from scipy import ndimage as ndi

                plane = ndi.label(plane)[0]
            source = where if flat_lab.shape[0] == 1 else f"{where}, plane {j}"
            planes.append((flat_im[j], plane.astype(np.int32), source))
        if len(planes) == n_before:
            raise ValueError(f"{where}: the labels are empty; paint some nuclei first")
    return planes


def read_pairs(images_dir, labels_dir):
    """(images, labels) lists from two folders of TIFFs paired by name.

    Names pair as in ``napari-binseg evaluate``: ``cells.tif`` with ``cells.tif`` or
    ``cells_labels.tif`` (also ``_masks``, ``_mask``, ``_gt``).
    """
    from ..io import imread, pair_files

    pairs = pair_files(images_dir, labels_dir, names=("image", "labels"))
    images = [imread(image)[0] for _, image, _ in pairs]
    labels = [imread(lab)[0] for _, _, lab in pairs]
    return images, labels


# --- checkpoints --------------------------------------------------------------------------------


def _save_checkpoint(folder, net, best, opt, sampler, state):
    """Network, best weights, optimizer and RNG states as safetensors plus JSON (no pickle)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tensors |= {f"best.{k}": v.contiguous() for k, v in best.items()}
    opt_state = opt.state_dict()
    for idx, values in opt_state["state"].items():
        for key, value in values.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(folder / "checkpoint.safetensors.tmp"))
    (folder / "checkpoint.safetensors.tmp").replace(folder / "checkpoint.safetensors")
    meta = dict(
        state,
        param_groups=opt_state["param_groups"],
        sampler_rng=sampler.rng.bit_generator.state,
    )
    (folder / "checkpoint.json.tmp").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / "checkpoint.json.tmp").replace(folder / "checkpoint.json")


def _load_checkpoint(folder, net, opt, sampler):
    """Restore what :func:`_save_checkpoint` wrote; returns its JSON state and best weights."""
    import torch
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / "checkpoint.safetensors").is_file():
        raise ValueError(f"resume: {folder} holds no checkpoint.safetensors")
    tensors = load_file(str(folder / "checkpoint.safetensors"))
    meta = json.loads((folder / "checkpoint.json").read_text())
    net_state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(net_state)
    except RuntimeError as exc:
        raise ValueError(f"resume: the checkpoint does not fit the network: {exc}") from None
    opt_state = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": opt_state, "param_groups": meta.pop("param_groups")})
    torch.set_rng_state(tensors["rng.torch"])
    sampler.rng.bit_generator.state = meta.pop("sampler_rng")
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    return meta, best


# --- training -----------------------------------------------------------------------------------


def _init_config(init):
    if init is None:
        return None
    from .network import resolve_model_path

    folder = resolve_model_path(init)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ValueError(
            f"init: {init!r} is not a model folder with config.json and model.safetensors"
        )
    return json.loads((folder / "config.json").read_text()) | {"_folder": str(folder)}


def _split(planes, val_fraction, seed):
    """Indices of training and validation planes (a seeded share, at least one of each)."""
    n = len(planes)
    order = np.random.default_rng(seed).permutation(n)
    k = min(n - 1, int(round(val_fraction * n)))
    if val_fraction > 0 and k == 0 and n > 1:
        k = 1
    return sorted(order[k:].tolist()), sorted(order[:k].tolist())


def train(
    images,
    labels,
    *,
    config=None,
    validation=None,
    out=None,
    resume=None,
    progress=None,
    on_epoch=None,
    stop=None,
    log=None,
):
    """Train or fine-tune a U-Net on annotated images; keep the best epoch by validation F1.

    Parameters
    ----------
    images : (..., M, N) array or list of arrays, or path
        Training images: 2D images or stacks (the last two axes are Y, X), or a folder of TIFFs
        (then ``labels`` is a folder of TIFFs with matching names).
    labels : array or list of arrays, or path
        Integer instance labels (0 = background), same shapes as ``images``. Planes of a stack
        without any label are ignored; within an annotated plane every nucleus must be
        painted (unpainted pixels are learnt as background).
    config : TrainConfig or dict, optional
        Options (:class:`TrainConfig`); default fine-tunes the bundled model.
    validation : (image, labels) tuple, optional
        Validation pair(s) instead of the ``val_fraction`` share of the training planes.
    out : path, optional
        Model folder: the best model (``model.safetensors``, ``config.json``,
        ``MODEL_CARD.md``) is written there after each improving epoch, and a checkpoint of
        the latest epoch in ``out/checkpoint``.
    resume : path, optional
        A checkpoint folder (``out/checkpoint`` of an earlier run with the same data and
        config) to continue from; the finished run equals an uninterrupted one.
    progress : callable, optional
        ``progress(done, total)`` after every step (it may block, e.g. to pause).
    on_epoch : callable, optional
        ``on_epoch(record)`` after every validation, with the history record
        (``epoch``, ``step``, ``train_loss``, ``val_loss``, ``val_f1``, ``minutes``).
    stop : callable, optional
        Polled after every step; when it returns True the run validates once more and ends,
        keeping the best model so far.
    log : callable, optional
        Receives progress lines.

    Returns
    -------
    model : LoadedModel
        The best model, ready for :func:`napari_binseg.segment`.
    history : list of dict
        One record per validation.

    Examples
    --------
    >>> import napari_binseg as nb
    >>> image, labels = nb.synthetic_nuclei((128, 128), seed=0)  # doctest: +SKIP
    >>> cfg = nb.TrainConfig(init=None, architecture="mobile", epochs=2, patch_size=64)
    >>> model, history = nb.train(image, labels, config=cfg)  # doctest: +SKIP
    >>> nb.segment(image, model)  # doctest: +SKIP
    """
    import torch

    from .inference import median_diameter, normalize_plane
    from .network import (
        DEFAULT_NORMALIZATION,
        _divisor,
        _load_state,
        build_network,
        loaded_model,
        resolve_device,
        save_model,
    )
    from .training import Sampler, fit, make_targets, validate

    if config is None:
        config = TrainConfig()
    elif isinstance(config, dict):
        config = TrainConfig.from_dict(config)
    config.validate()
    log = log or (lambda message: None)
    if isinstance(images, (str, Path)):
        images, labels = read_pairs(images, labels)
    planes = annotated_planes(images, labels)
    if validation is not None:
        val_planes = annotated_planes(*validation, name="validation pair")
        train_idx, val_idx = list(range(len(planes))), []
    else:
        train_idx, val_idx = _split(planes, config.val_fraction, config.seed)
        val_planes = [planes[i] for i in val_idx] or [planes[i] for i in train_idx]
    train_planes = [planes[i] for i in train_idx]

    init_config = _init_config(config.init)
    network = _network(config, init_config)
    divisor = _divisor(network)
    if config.patch_size % divisor:
        raise ValueError(
            f"patch_size must be a multiple of {divisor} for {network['name']}, "
            f"got {config.patch_size}"
        )
    norm = (init_config or {}).get("normalization") or DEFAULT_NORMALIZATION
    post = dict(
        (init_config or {}).get("postprocess")
        or {"prob_threshold": 0.5, "seed_threshold": 0.5, "min_size": 8}
    )
    # segment(diameter="auto") brings nuclei towards the size this model learns from.
    diameter = median_diameter([lab for _, lab, _ in train_planes])
    post.update(diameter=round(diameter, 1) if diameter else None, max_scale=2.0)

    t_start = time.time()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)

    def prepare(image):
        # The inference path's normalization, so the model sees what segment() will feed it.
        return normalize_plane(image, norm)

    sampler = Sampler(
        [prepare(im) for im, _, _ in train_planes],
        [make_targets(lab) for _, lab, _ in train_planes],
        crop=config.patch_size,
        seed=config.seed,
        augment=config.augment,
    )
    val_images = [prepare(im) for im, _, _ in val_planes]
    val_labels = [lab for _, lab, _ in val_planes]
    net = build_network(network)
    if init_config:
        net.load_state_dict(_load_state(Path(init_config["_folder"]) / "model.safetensors"))
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    loss = LOSSES[config.loss]

    def summary(planes_):
        return {
            "planes": len(planes_),
            "pixels": int(sum(p[0].size for p in planes_)),
            "nuclei": int(sum(len(np.unique(p[1])) - 1 for p in planes_)),
            "sources": [p[2] for p in planes_],
        }

    model_config = {
        "name": Path(out).name if out is not None else "trained",
        "network": network,
        "outputs": ["foreground", "centre"],
        "activation": "sigmoid",
        "normalization": norm,
        "postprocess": post,
        "training": {
            "config": config.to_dict(),
            "init": None if config.init is None else str(config.init),
            "data": summary(train_planes),
            "validation": summary(val_planes)
            | {
                "source": "validation pair"
                if validation is not None
                else ("held-out share" if val_idx else "training planes (too few to hold out)")
            },
        },
    }
    history, start, best_f1, best_state = [], 0, -1.0, None
    if resume is not None:
        state, best_state = _load_checkpoint(resume, net, opt, sampler)
        start, history, best_f1 = state["step"], state["history"], state["best_f1"]
        model_config["training"].update(best_step=state["best_step"], best_val_f1=best_f1)
        log(f"resumed at step {start} (best validation F1 {best_f1:.4f})")
    log(
        f"training on {len(train_planes)} plane(s), validating on {len(val_planes)}; "
        f"{network['name']} on {device}; {config.steps} steps"
    )
    deadline = t_start + 60 * config.minutes if config.minutes else None
    running = []
    step = start
    stopped = False
    for step, value in fit(
        net,
        opt,
        sampler,
        steps=config.steps,
        lr=config.lr,
        batch_size=config.batch_size,
        device=device,
        loss=loss,
        start=start,
        deadline=deadline,
    ):
        running.append(value)
        if progress is not None:
            progress(step, config.steps)
        stopped = stop is not None and stop()
        last = step >= config.steps or stopped
        last = last or (deadline is not None and time.time() >= deadline)
        if step % config.steps_per_epoch and not last:
            continue
        f1, _, pooled = validate(
            net, val_images, val_labels, device, loss=loss, multiple=max(16, divisor)
        )
        record = {
            "epoch": len(history) + 1,
            "step": step,
            "train_loss": float(np.mean(running)),
            "val_loss": pooled.attrs["loss"],
            "val_f1": f1,
            "minutes": (time.time() - t_start) / 60,
        }
        running = []
        history.append(record)
        log(
            f"epoch {record['epoch']} (step {step}): train loss {record['train_loss']:.4f}, "
            f"val loss {record['val_loss']:.4f}, val F1@0.5 {f1:.4f}"
        )
        if f1 > best_f1:
            best_f1 = f1
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            model_config["training"].update(best_step=step, best_val_f1=f1)
            if out is not None:
                model_config["training"]["history"] = history
                save_model(net, model_config, out)
        if out is not None:
            best_step = model_config["training"]["best_step"]
            state = {"step": step, "history": history, "best_f1": best_f1, "best_step": best_step}
            _save_checkpoint(Path(out) / "checkpoint", net, best_state, opt, sampler, state)
        if on_epoch is not None:
            on_epoch(record)
        if stopped:
            break

    if not history:
        raise ValueError(f"minutes={config.minutes} ended the run before its first step")
    stopped_by = "steps" if step >= config.steps else ("stop" if stopped else "time")
    model_config["training"].update(
        history=history, steps_done=step, stopped_by=stopped_by, minutes=history[-1]["minutes"]
    )
    net.load_state_dict(best_state)
    sha = ""
    if out is not None:
        sha = save_model(net, model_config, out)
        (Path(out) / "MODEL_CARD.md").write_text(model_card(model_config))
    log(f"done: {step} steps ({stopped_by}); best validation F1@0.5 {best_f1:.4f}")
    model = loaded_model(
        net.eval(),
        model_config,
        name=model_config["name"],
        path=out or "",
        sha256=sha,
        device=device,
    )
    return model, history


def model_card(config):
    """A short Markdown model card of a model trained by :func:`train`."""
    tr = config["training"]
    opts = tr["config"]
    rows = "\n".join(
        f"| {h['epoch']} | {h['step']} | {h['train_loss']:.4f} | {h['val_loss']:.4f} | "
        f"{h['val_f1']:.4f} |"
        for h in tr["history"]
    )
    start = f"fine-tuned from `{tr['init']}`" if tr["init"] else "trained from scratch"
    return f"""# {config["name"]}: U-Net trained with napari-binseg

A MONAI `{config["network"]["name"]}` ({start}) predicting two sigmoid channels, nucleus
**foreground** and **centre**; `napari_binseg.segment` grows centre seeds through the
foreground into instances. Architecture and options: `config.json`; weights:
`model.safetensors`.

## Input
One channel; each 2D plane normalized by its {config["normalization"]["low"]} and
{config["normalization"]["high"]} intensity percentiles. Post-processing:
{json.dumps(config["postprocess"])}.

## Training
{tr["data"]["planes"]} annotated plane(s), {tr["data"]["nuclei"]} nuclei; validation:
{tr["validation"]["planes"]} plane(s) ({tr["validation"]["source"]}). Loss {opts["loss"]},
AdamW lr {opts["lr"]}, batch {opts["batch_size"]} of {opts["patch_size"]}-pixel patches,
augmentations {", ".join(opts["augment"]) or "none"}, seed {opts["seed"]}. {tr["steps_done"]}
steps ({tr["minutes"]:.1f} min, ended by {tr["stopped_by"]}); best epoch at step
{tr["best_step"]}, validation F1@0.5 {tr["best_val_f1"]:.4f}.

| epoch | step | train loss | val loss | val F1@0.5 |
|---|---|---|---|---|
{rows}

## Limitations
Validation scores come from the user's own few annotated planes; check the model on images
it was not trained on before relying on it.
"""


def export_bundle(model, dest):
    """Write a model folder as a MONAI bundle: ``configs/*.json`` and ``models/model.pt``.

    ``network_def`` holds the MONAI class and literal arguments; ``models/model.pt`` is a
    state dict (tensors only, loadable with ``torch.load(weights_only=True)``). Output channel
    names, normalization and post-processing go to ``configs/metadata.json``, so
    :func:`napari_binseg.load_model` reads the bundle back as the same model.

    Parameters
    ----------
    model : path
        Folder with ``config.json`` and ``model.safetensors`` (what :func:`train` writes).
    dest : path
        Bundle folder to create.

    Returns
    -------
    dest : Path
    """
    import torch

    from .network import _load_state, _network_of, resolve_model_path

    folder = resolve_model_path(model)
    config = json.loads((folder / "config.json").read_text())
    network = _network_of(config, f"model {folder}")
    state = _load_state(folder / "model.safetensors")
    dest = Path(dest)
    (dest / "configs").mkdir(parents=True, exist_ok=True)
    (dest / "models").mkdir(parents=True, exist_ok=True)
    torch.save(state, dest / "models" / "model.pt")
    outputs = config.get("outputs") or ["foreground", "centre"]
    inference = {
        "network_def": {"_target_": f"monai.networks.nets.{network['name']}"} | network["kwargs"],
        "postprocessing": {
            "_target_": "Activationsd",
            "keys": "pred",
            "sigmoid": True,
        },
    }
    metadata = {
        "version": "0.1.0",
        "name": config.get("name", folder.name),
        "description": "Nuclei foreground and centre U-Net trained with napari-binseg",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": 1, "spatial_shape": [-1, -1]}},
            "outputs": {
                "pred": {
                    "type": "probabilities",
                    "num_channels": len(outputs),
                    "channel_def": {str(i): name for i, name in enumerate(outputs)},
                }
            },
        },
        "napari_binseg": {
            "normalization": config.get("normalization"),
            "postprocess": config.get("postprocess"),
            "training": {k: v for k, v in config.get("training", {}).items() if k != "history"},
        },
    }
    (dest / "configs" / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
    (dest / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return dest
