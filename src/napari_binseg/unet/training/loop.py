"""The training loop: losses, optimizer steps on a schedule, validation through inference.

Validation runs the network as :func:`napari_binseg.segment` does with its defaults (the
inference path's normalization, nucleus size estimate and resizing, padding and
post-processing), so the validation F1 is the score a user of the trained model gets, not
that of a second predictor or of another scale.
"""

import math
import time

import numpy as np

from .data import make_targets


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


class NonFiniteLoss(ArithmeticError):
    """Raised by :func:`fit` when a batch's loss is NaN or infinite (before the weights change).

    Attributes
    ----------
    step : int
        The step that would have been taken (1-based).
    value : float
        The loss value.
    """

    def __init__(self, step, value):
        super().__init__(f"the training loss became {value} at step {step}")
        self.step = step
        self.value = value


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

    Raises
    ------
    NonFiniteLoss
        When a batch's loss is not finite; the optimizer has not stepped on it, so the
        network keeps the weights of the previous step.
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
        number = float(value.detach())
        if not math.isfinite(number):
            raise NonFiniteLoss(step + 1, number)
        opt.zero_grad(set_to_none=True)
        value.backward()
        opt.step()
        step += 1
        yield step, number


def validation_model(net, network, normalization, device, postprocess=None):
    """A :class:`~napari_binseg.unet.network.LoadedModel` view of ``net``, with the model
    config's ``postprocess`` section (its thresholds, minimum size and size rule).

    A copy in eval mode (BatchNorm not folded), so validation matches the training network
    exactly while going through the inference path.
    """
    from ..network import loaded_model

    config = {
        "network": network,
        "outputs": ["foreground", "centre"],
        "activation": "sigmoid",
        "normalization": normalization,
        "postprocess": {"prob_threshold": 0.5, "seed_threshold": 0.5, "min_size": 8}
        | (postprocess or {}),
        "optimize": False,
    }
    return loaded_model(net, config, name="validation", device=device)


def validate(
    net,
    network,
    normalization,
    images,
    labels,
    device,
    *,
    thresholds=(0.5,),
    loss=None,
    postprocess=None,
    target_cache=None,
):
    """Pooled object F1 at IoU 0.5 (:func:`napari_binseg.evaluate`) over validation images,
    segmented as :func:`napari_binseg.segment` segments them with its defaults.

    ``images`` are raw planes; each goes through ``segment(diameter="auto")``'s path for one
    plane: normalized with ``normalization`` (the model's), its nucleus size estimated by
    the network and the plane run at the scale that estimate gives (resized back), instances
    from the thresholds, minimum size and object-confidence floor of ``postprocess`` (the
    model config's section; default 0.5 / 0.5 / 8 px / none). A ``postprocess`` without
    ``diameter`` runs every plane at its own size. With ``loss`` (a function of logits and
    targets, e.g. :data:`LOSSES` values), the mean loss of the passes that gave the labels,
    against the targets of the labels resized to the pass's scale, is stored in
    ``pooled.attrs["loss"]``; a ``target_cache`` dict kept across calls (epochs) holds those
    targets, by image and shape, so they are computed once.

    Returns
    -------
    f1 : float
        Pooled F1 at the first threshold.
    per_image : float
        Mean of the per-image F1.
    pooled : DataFrame
        :func:`napari_binseg.evaluation.aggregate` table.
    """
    import torch

    from ...evaluation import aggregate, evaluate
    from ...options import UNetOptions
    from ..backends import _Runner
    from ..passes import _auto_unit, _normalized_units, _probing, model_confidence
    from ..scale import labels_resized

    lm = validation_model(net, network, normalization, device, postprocess)
    threshold = lm.config["postprocess"]["prob_threshold"]
    floor = model_confidence(None, lm)
    defaults = UNetOptions()
    kw = {"tile_size": defaults.tile_size, "overlap": defaults.overlap, "batch_size": 1}
    runner = _Runner(lm, precision="float32", progress=None, total=0, backend="torch")
    target_cache = {} if target_cache is None else target_cache
    tables = []
    losses = []
    for i, (image, truth) in enumerate(zip(images, labels, strict=True)):
        ((_, unit, _),) = _normalized_units(np.asarray(image), lm)
        info = {"looked": 0, "estimate_seconds": 0.0, "probe_seconds": 0.0, "remeasured": 0}
        probing = _probing(lm, unit.shape)
        pred, prob, _, _ = _auto_unit(unit, lm, runner, threshold, probing, info, floor, **kw)
        tables.append(evaluate(truth, pred, thresholds=list(thresholds), label_masks=False))
        if loss is not None:
            key = (i, prob.shape[1:])
            if key not in target_cache:
                if prob.shape[1:] != truth.shape:
                    truth = labels_resized(truth, prob.shape[1:])
                target_cache[key] = torch.from_numpy(make_targets(truth).astype(np.float32))
            target = target_cache[key][None]
            logits = torch.logit(torch.from_numpy(prob)[None], eps=1e-6)
            losses.append(float(loss(logits, target)))
    pooled = aggregate(tables)
    if loss is not None:
        pooled.attrs["loss"] = float(np.mean(losses))
    per_image = float(np.mean([t["f1"].iloc[0] for t in tables]))
    return float(pooled["f1"].iloc[0]), per_image, pooled
