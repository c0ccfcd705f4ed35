"""Train or fine-tune a U-Net on annotated images (:func:`train`); export a MONAI bundle."""

import json
import math
import time
import warnings
from pathlib import Path

import numpy as np

from ...options import TrainOptions
from ..scale import MAX_SCALE, max_scale
from .card import model_card, starting_model_kept
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig, network_of
from .data import (
    SCRATCH_DIAMETER,
    Sampler,
    annotated_planes,
    at_segment_scale,
    make_targets,
    read_named_pairs,
    split_planes,
)
from .loop import LOSSES, NonFiniteLoss, fit, validate


class TrainingDiverged(ValueError):
    """The training loss became NaN or infinite: the run stopped, keeping its best epoch.

    Attributes
    ----------
    model : LoadedModel or None
        The best model before the divergence (also written to ``out``), None when no epoch
        had been validated.
    history : list of dict
        The validation records up to the divergence.
    """

    def __init__(self, message, model=None, history=()):
        super().__init__(message)
        self.model = model
        self.history = list(history)


class StartingModelKept(UserWarning):
    """No epoch of a fine-tune beat its starting model: the model written is the init's."""


def init_margin(f1, nuclei):
    """How much a fine-tuned epoch must beat its starting model's validation F1 by: one
    standard error of that F1 over the ``nuclei`` validation nuclei, ``sqrt(f1 (1 - f1) / n)``.

    The best of many epochs scored on a few nuclei beats the starting model by luck alone
    (bench_finetune: 40 epochs on 44 nuclei ranged 0.83-0.93 around its 0.89); as in the
    one-standard-error rule of model selection (Breiman et al. 1984; Hastie et al., *The
    Elements of Statistical Learning*, 7.10), the simpler choice, here the unchanged model,
    stands unless beaten by more than that noise.
    """
    return math.sqrt(f1 * (1 - f1) / nuclei)


def _init_config(init):
    """The config of the model folder ``init``, its normalization and post-processing checked
    and filled in as :func:`~napari_binseg.load_model` does (a bad value stops the run before
    any work; a missing ``max_scale`` stays missing: it runs at scale.LEGACY_MAX_SCALE)."""
    if init is None:
        return None
    from ..network import _network_of, _normalize_config, _read_json, resolve_model_path

    folder = resolve_model_path(init)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise ValueError(
            f"init: {init!r} is not a model folder with config.json and model.safetensors"
        )
    config = _read_json(folder / "config.json")
    where = f"init {init!r}"
    checked = _normalize_config(
        config, network=_network_of(config, where), kind="init", out_channels=None, where=where
    )
    return config | {
        "normalization": checked["normalization"],
        "postprocess": checked["postprocess"],
        "_folder": str(folder),
    }


def _summary(planes):
    return {
        "planes": len(planes),
        "pixels": int(sum(p[0].size for p in planes)),
        # Labels may cover a plane without a background pixel: count the ids above 0.
        "nuclei": int(sum(np.count_nonzero(np.unique(p[1])) for p in planes)),
        "sources": [p[2] for p in planes],
    }


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

    Targets are the nucleus foreground and centres (touching nuclei get separate centres);
    crops are augmented (:class:`~napari_binseg.unet.training.data.Sampler`); validation runs
    the network through the inference path of :func:`napari_binseg.segment`, size estimate
    and resizing included.

    A fine-tune (an ``init`` model) first validates its starting model (epoch 0, step 0, no
    train loss), which competes for the best epoch: a fine-tuned epoch replaces it only if it
    beats its validation F1 by more than one standard error (:func:`init_margin`: 0.045 at
    F1 0.9 on 44 nuclei, 0.015 on 400). Otherwise the model written and returned has the
    starting model's weights, unchanged, its config records ``training.init_kept`` (true)
    and ``init_margin``, its card says so, and a :class:`StartingModelKept` warning is
    issued. From scratch there is no epoch 0.

    Each plane trains at the scale ``segment(diameter="auto")`` will run it at
    (:func:`~napari_binseg.unet.training.data.segment_scale` of its labels' median nucleus),
    by the size rule of the reference diameter the model records (``postprocess.diameter``):
    the init model's when fine-tuning, so its weights keep working at the scale they learnt
    (the bundled model's 19.3 pixels: 63x nuclei of ~100 pixels train at 0.25x); from
    scratch, the bundled model's too (:data:`~napari_binseg.unet.training.data.
    SCRATCH_DIAMETER`); for an init model without one, the training nuclei's median. The
    scale of each plane is recorded in the model's ``training.data.scales``.

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
        (``epoch``, ``step``, ``train_loss``, ``val_loss``, ``val_f1``, ``val_f1_per_image``,
        ``minutes``; ``train_loss`` is None at epoch 0, a fine-tune's starting model).
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
        One record per validation (a fine-tune's starts with epoch 0).

    Warns
    -----
    StartingModelKept
        No epoch of a fine-tune beat its starting model by more than :func:`init_margin`:
        the model is the starting model.

    Raises
    ------
    ValueError
        Bad options or data (NaN or infinite pixels, planes under 16 x 16 pixels, unreadable
        files, empty labels; the message names the image), an unusable ``resume`` checkpoint,
        ``minutes`` running out before the first training step (a fine-tune's validation of
        its starting model counts; ``out`` then holds the starting model, unchanged).
    TrainingDiverged
        (a ValueError) The loss became NaN or infinite: training stopped there; the best
        epoch before it (a fine-tune's starting model at worst) is kept in ``out`` and in the
        exception's ``model``.

    Examples
    --------
    >>> import napari_binseg as nb
    >>> image, labels = nb.synthetic_nuclei((128, 128), seed=0)  # doctest: +SKIP
    >>> cfg = nb.TrainConfig(init=None, architecture="mobile", epochs=2, patch_size=64)
    >>> model, history = nb.train(image, labels, config=cfg)  # doctest: +SKIP
    >>> nb.segment(image, model)  # doctest: +SKIP
    """
    import torch

    from ..inference import median_diameter, normalize_plane
    from ..network import (
        DEFAULT_NORMALIZATION,
        _check_kwargs,
        _divisor,
        _load_state,
        build_network,
        loaded_model,
        resolve_device,
        save_model,
    )

    if config is None:
        config = TrainConfig()
    elif isinstance(config, TrainConfig):
        config.validate()
    elif isinstance(config, TrainOptions):
        config = TrainConfig.from_dict(config.to_dict())
    else:
        config = TrainConfig.from_dict(config)
    log = log or (lambda message: None)
    sources = None
    if isinstance(images, (str, Path)):
        images, labels, sources = read_named_pairs(images, labels)
    planes = annotated_planes(images, labels, sources=sources)
    if validation is not None:
        val_planes = annotated_planes(*validation, name="validation pair")
        train_idx, val_idx = list(range(len(planes))), []
    else:
        train_idx, val_idx = split_planes(len(planes), config.val_fraction, config.seed)
        val_planes = [planes[i] for i in val_idx] or [planes[i] for i in train_idx]
    train_planes = [planes[i] for i in train_idx]

    init_config = _init_config(config.init)
    network = network_of(config, init_config)
    where = "architecture" if config.architecture is not None else f"init {config.init!r}"
    dims, _ = _check_kwargs(network, where)
    if dims != 2:
        raise ValueError(
            f"{where}: the network is {dims}D; training takes 2D networks (spatial_dims 2): "
            "it learns from annotated planes"
        )
    divisor = _divisor(network)
    if config.patch_size % divisor:
        raise ValueError(
            f"patch_size must be a multiple of {divisor} for {network['name']}, "
            f"got {config.patch_size}"
        )
    # The reference size and cap of segment(diameter="auto"), written out: from scratch, the
    # bundled model's; a fine-tune keeps its init's, the scale its weights work at (a config
    # without a cap ran at scale.LEGACY_MAX_SCALE; without a reference, at its own scale: the
    # training nuclei's median becomes it).
    if init_config is None:
        norm = DEFAULT_NORMALIZATION
        post = {"prob_threshold": 0.5, "seed_threshold": 0.5, "min_size": 8}
        post.update(diameter=SCRATCH_DIAMETER, max_scale=MAX_SCALE)
    else:
        norm, post = init_config["normalization"], dict(init_config["postprocess"])
        if post.get("diameter") is None:
            post["diameter"] = round(median_diameter([lab for _, lab, _ in train_planes]), 1)
        post["max_scale"] = max_scale(post)

    t_start = time.time()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)

    # What segment() will feed the model: planes normalized, then resized as its size rule
    # resizes them for their nuclei.
    scaled = [
        at_segment_scale(normalize_plane(im, norm), lab, post, divisor)
        for im, lab, _ in train_planes
    ]
    sampler = Sampler(
        [im for im, _, _ in scaled],
        [make_targets(lab) for _, lab, _ in scaled],
        crop=config.patch_size,
        seed=config.seed,
        augment=config.augment,
    )
    # Raw planes: validation goes through segment()'s inference path, normalization included.
    val_images = [im for im, _, _ in val_planes]
    val_labels = [lab for _, lab, _ in val_planes]
    val_targets = {}
    net = build_network(network)
    if init_config:
        net.load_state_dict(_load_state(Path(init_config["_folder"]) / "model.safetensors"))
    net = net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=1e-4)
    loss = LOSSES[config.loss]

    if validation is not None:
        val_source = "validation pair"
    else:
        val_source = "held-out share" if val_idx else "training planes (too few to hold out)"
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
            "data": _summary(train_planes) | {"scales": [s for _, _, s in scaled]},
            "validation": _summary(val_planes) | {"source": val_source},
        },
    }
    history, start, best_f1, best_state = [], 0, -1.0, None
    if resume is not None:
        state, best_state = load_checkpoint(resume, net, opt, sampler)
        start, history, best_f1 = state["step"], state["history"], state["best_f1"]
        model_config["training"].update(best_step=state["best_step"], best_val_f1=best_f1)
        log(f"resumed at step {start} (best validation F1 {best_f1:.4f})")
    log(
        f"training on {len(train_planes)} plane(s), validating on {len(val_planes)}; "
        f"{network['name']} on {device}; {config.steps} steps"
    )

    def validate_epoch(step, train_loss):
        """Validate the network at ``step``; keep, write and checkpoint it if it is the best."""
        nonlocal best_f1, best_state
        f1, per_image, pooled = validate(
            net,
            network,
            norm,
            val_images,
            val_labels,
            device,
            loss=loss,
            postprocess=post,
            target_cache=val_targets,
        )
        record = {
            "epoch": history[-1]["epoch"] + 1 if history else int(step > 0),
            "step": step,
            "train_loss": train_loss,
            "val_loss": pooled.attrs["loss"],
            "val_f1": f1,
            "val_f1_per_image": per_image,
            "minutes": (time.time() - t_start) / 60,
        }
        history.append(record)
        if step:
            log(
                f"epoch {record['epoch']} (step {step}): train loss {train_loss:.4f}, "
                f"val loss {record['val_loss']:.4f}, val F1@0.5 {f1:.4f}"
            )
        else:
            log(
                f"epoch 0 (the starting model): val loss {record['val_loss']:.4f}, "
                f"val F1@0.5 {f1:.4f}"
            )
        tr = model_config["training"]
        bar = best_f1
        if step and tr.get("best_step") == 0:  # the starting model is the best so far
            bar += init_margin(history[0]["val_f1"], tr["validation"]["nuclei"])
        if f1 > bar:
            best_f1 = f1
            best_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            model_config["training"].update(best_step=step, best_val_f1=f1)
            if out is not None:
                model_config["training"]["history"] = history
                save_model(net, model_config, out)
        if out is not None:
            best_step = model_config["training"]["best_step"]
            state = {"step": step, "history": history, "best_f1": best_f1, "best_step": best_step}
            save_checkpoint(Path(out) / "checkpoint", net, best_state, opt, sampler, state)
        if on_epoch is not None:
            on_epoch(record)

    # A fine-tune competes with its starting model (epoch 0): training on a few planes can
    # make a good model worse, and the user must then get the model they started from.
    if init_config and resume is None:
        validate_epoch(0, None)
    deadline = t_start + 60 * config.minutes if config.minutes else None
    running = []
    step = start
    stopped = False
    diverged = None
    steps = fit(
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
    )
    while True:
        try:
            step, value = next(steps)
        except StopIteration:
            break
        except NonFiniteLoss as exc:
            diverged = exc
            log(f"stopped: {exc}")
            break
        running.append(value)
        if progress is not None:
            progress(step, config.steps)
        stopped = stop is not None and stop()
        last = step >= config.steps or stopped
        last = last or (deadline is not None and time.time() >= deadline)
        if step % config.steps_per_epoch and not last:
            continue
        validate_epoch(step, float(np.mean(running)))
        running = []
        if stopped:
            break

    if diverged is not None and not history:
        raise TrainingDiverged(
            f"training stopped: {diverged} (lr={config.lr}), before the first validation; "
            "no model was written. Check the data or lower the learning rate"
        )
    if diverged is None and step == 0:
        # Nothing was trained (validating the starting model can take the whole budget):
        # a model written as a result would read as trained, or as beaten by the init.
        reason = f"minutes={config.minutes:g} ran out before the first training step"
        if history:
            reason += f" (validating the starting model took {history[0]['minutes']:.2g} min)"
            if out is not None:
                reason += f"; {out} holds the starting model, unchanged"
        raise ValueError(f"{reason}; nothing was trained: give more minutes, or none")
    if diverged is not None:
        stopped_by = "non-finite loss"
    else:
        stopped_by = "steps" if step >= config.steps else ("stop" if stopped else "time")
    model_config["training"].update(
        history=history, steps_done=step, stopped_by=stopped_by, minutes=history[-1]["minutes"]
    )
    if init_config and history[0]["epoch"] == 0:
        tr = model_config["training"]
        tr["init_kept"] = tr["best_step"] == 0
        tr["init_margin"] = init_margin(history[0]["val_f1"], tr["validation"]["nuclei"])
    net.load_state_dict(best_state)
    sha = ""
    if out is not None:
        sha = save_model(net, model_config, out)
        (Path(out) / "MODEL_CARD.md").write_text(model_card(model_config))
    model = loaded_model(
        net.eval(),
        model_config,
        name=model_config["name"],
        path=out or "",
        sha256=sha,
        device=device,
    )
    tr = model_config["training"]
    if diverged is not None:
        kept = f"kept in {out}" if out is not None else "kept in the exception's .model"
        best = "the starting model" if tr.get("init_kept") else "the best epoch before it"
        raise TrainingDiverged(
            f"training stopped: {diverged} (lr={config.lr}); {best} "
            f"(step {tr['best_step']}, validation F1@0.5 {best_f1:.4f}) is {kept}",
            model=model,
            history=history,
        )
    log(f"done: {step} steps ({stopped_by}); best validation F1@0.5 {best_f1:.4f}")
    if tr.get("init_kept"):
        message = starting_model_kept(tr, written=out is not None)
        log(message)
        warnings.warn(message, StartingModelKept, stacklevel=2)
    return model, history


def export_bundle(model, dest):
    """Write a model folder as a MONAI bundle: ``configs/*.json`` and ``models/model.pt``.

    ``network_def`` holds the MONAI class and literal arguments; ``models/model.pt`` is a
    state dict (tensors only, loadable with ``torch.load(weights_only=True)``). Output channel
    names, normalization and post-processing (its ``max_scale`` written out, as the model
    runs) go to ``configs/metadata.json``, so :func:`napari_binseg.load_model` reads the
    bundle back as the same model.

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

    from ..network import _load_state, _network_of, resolve_model_path

    folder = resolve_model_path(model)
    config = json.loads((folder / "config.json").read_text())
    network = _network_of(config, f"model {folder}")
    state = _load_state(folder / "model.safetensors")
    dest = Path(dest)
    (dest / "configs").mkdir(parents=True, exist_ok=True)
    (dest / "models").mkdir(parents=True, exist_ok=True)
    torch.save(state, dest / "models" / "model.pt")
    outputs = config.get("outputs") or ["foreground", "centre"]
    post = config.get("postprocess") or {}
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
            "postprocess": post | {"max_scale": max_scale(post)},
            "training": {k: v for k, v in config.get("training", {}).items() if k != "history"},
        },
    }
    (dest / "configs" / "inference.json").write_text(json.dumps(inference, indent=2) + "\n")
    (dest / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=2) + "\n")
    return dest
