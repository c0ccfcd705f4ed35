"""One plane through the network: normalization, resize, tiles, and labels at a scale.

The per-unit building blocks of :mod:`.inference` (``predict``, ``segment``) and of the 3D
volume modes: :func:`probabilities_at_scale` is the documented entry point; ``_auto_unit`` is
``segment(diameter="auto")`` on one plane (the rule itself lives in :mod:`.scale`).
"""

import math
import time

import numpy as np

from .._validation import is_dask
from ._postprocess import probabilities_to_labels, remove_small, remove_unconfident
from .backends import _Runner
from .normalize import nonfinite_mask, normalize_plane
from .scale import (
    LOOK_SCALE,
    PROBE_SCALE,
    SPECK,
    checked_estimate,
    down_scales,
    labels_resized,
    look_limit,
    mask_diameter,
    median_diameter,
    needs_look,
    plane_cap,
    plane_upsampling,
    plausible,
    probe_scale,
    probe_shape_ok,
    resize,
    scaled_shape,
    size_rule,
    upsample_factor,
)
from .tiling import _infer_unit, _plan


def _check_options(**options):
    """Validate keyword options through :class:`napari_binseg.options.UNetOptions`."""
    from ..options import UNetOptions

    UNetOptions(**options)


def _units(image, lm):
    """Leading index tuples of the units (planes for 2D networks, volumes for 3D ones)."""
    dims = lm.spatial_dims
    if image.ndim < dims:
        raise ValueError(
            f"image has shape {image.shape} but the model {lm.name!r} is {dims}D: "
            f"it needs at least {dims} dimensions"
        )
    lead = image.shape[: image.ndim - dims]
    return list(np.ndindex(*lead)) if lead else [()]


def _normalized_units(image, lm):
    """Yield (index, normalized float32 unit, mask of its non-finite pixels or None)."""
    norm = lm.config["normalization"]
    for idx in _units(image, lm):
        unit = image[idx] if idx else image
        if is_dask(unit):
            unit = unit.compute()
        unit = np.asarray(unit)
        bad = nonfinite_mask(unit)
        yield idx, normalize_plane(unit, norm, bad), bad


def _probing(lm, spatial):
    """Whether ``diameter="auto"`` probes units of shape ``spatial`` (a 2D model with a
    reference diameter, planes large enough for the 0.25x pass)."""
    return (
        lm.spatial_dims == 2
        and lm.config["postprocess"].get("diameter") is not None
        and probe_shape_ok(spatial, lm.config["divisor"])
    )


def _tiles(shape, lm, scale, tile_size, overlap):
    return _plan(scaled_shape(shape, scale), lm, tile_size, overlap)[2]


def _infer_pass(unit, lm, runner, scale, *, tile_size, overlap, batch_size, extra=False):
    """Probabilities of a normalized unit resized by ``scale`` (at the resized shape).

    ``runner.done`` ends at exactly the pass's planned tiles; an ``extra`` pass (one that
    was not counted in ``runner.total`` in advance) first adds them to ``runner.total``.
    """
    shape = scaled_shape(unit.shape, scale)
    tiles = _plan(shape, lm, tile_size, overlap)[2]
    if extra:
        runner.total += tiles
    done = runner.done + tiles
    probs = _infer_unit(
        unit if scale == 1.0 else resize(unit, shape),
        lm,
        runner,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
    )
    runner.done = done
    return probs


def probabilities_at_scale(
    plane,
    model="nuclei",
    scale=1.0,
    *,
    device="auto",
    tile_size=1024,
    overlap=0.25,
    batch_size=4,
    precision="auto",
    backend="auto",
    runner=None,
):
    """Channel probabilities of one plane (or volume) run through the network at ``scale``.

    The building block of :func:`predict` and :func:`segment`, for callers that choose the
    scale themselves (3D volume modes, benchmarks): the plane is normalized like every plane
    of :func:`segment` (its own percentiles; NaN/inf pixels as background), resized by
    ``scale`` (bilinear, antialiased when shrinking) and run in one pass or in tiles.

    Parameters
    ----------
    plane : (Y, X) array-like (or (Z, Y, X) for a 3D model)
        One unit of intensities, any numeric dtype.
    model : str, path-like or LoadedModel
        As in :func:`predict`.
    scale : float
        Resize factor (1.0: the plane's own pixel size; 2D models only otherwise).
    device, tile_size, overlap, batch_size, precision, backend
        As in :func:`predict`.
    runner : backends._Runner, optional
        Reuse one runner (its compiled network and tile count) over many calls.

    Returns
    -------
    probabilities : (C, Y', X') ndarray of float32
        The model's output channels at the resized shape ``round(Y * scale), round(X *
        scale)`` (foreground and centre for the bundled model); resize them back with
        :func:`napari_binseg.unet.scale.resize`.

    Examples
    --------
    >>> import numpy as np
    >>> probabilities_at_scale(np.zeros((64, 64), np.uint8), scale=0.5).shape  # doctest: +SKIP
    (2, 32, 32)
    """
    from .network import load_model

    _check_options(
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        precision=precision,
        backend=backend,
    )
    lm = load_model(model, device=device)
    plane = np.asarray(plane)
    if plane.ndim != lm.spatial_dims:
        raise ValueError(f"plane must be {lm.spatial_dims}D for {lm.name!r}, got {plane.shape}")
    if not (isinstance(scale, (int, float, np.number)) and 0 < scale <= 16):
        raise ValueError(f"scale must be a number in (0, 16], got {scale!r}")
    if scale != 1.0 and lm.spatial_dims != 2:
        raise ValueError("scale applies to 2D models only")
    if runner is None:
        runner = _Runner(lm, precision=precision, progress=None, total=0, backend=backend)
    unit = normalize_plane(plane, lm.config["normalization"])
    return _infer_pass(
        unit,
        lm,
        runner,
        float(scale),
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        extra=True,
    )


def _labels_at_scale(probs, lm, scale, shape, prob_threshold, resize=True, min_confidence=0.0):
    """Instances from probabilities computed at ``scale``, as a label plane of ``shape``
    (``resize=False``: at the probabilities' own shape, objects under the model's
    ``min_size`` times ``scale**2`` removed). ``min_confidence`` (a result's, off for the
    size estimate's passes) applies at ``scale``."""
    kw = dict(prob_threshold=prob_threshold, min_confidence=min_confidence)
    if scale == 1.0:
        return labels_from_probabilities(probs, lm, **kw)
    min_size = lm.config["postprocess"]["min_size"] * scale**2
    labels = labels_from_probabilities(probs, lm, min_size=min_size, **kw)
    return labels_resized(labels, shape) if resize else labels


def _foreground(probs, lm):
    fg = lm.config["foreground_channel"]
    if fg == -1:
        return 1.0 - probs[0]
    return probs[fg]


def model_threshold(prob_threshold, lm):
    """``prob_threshold``, or the model's own (``postprocess.prob_threshold`` of its config)
    where it is None."""
    return lm.config["postprocess"]["prob_threshold"] if prob_threshold is None else prob_threshold


def model_confidence(min_confidence, lm):
    """``min_confidence``, or the model's own (``postprocess.min_confidence`` of its config;
    0, keep every object, where the config has none) where it is None."""
    if min_confidence is None:
        return lm.config["postprocess"].get("min_confidence", 0.0)
    return min_confidence


def labels_from_probabilities(
    probs, lm, *, prob_threshold=None, seed_threshold=None, min_size=None, min_confidence=None
):
    """Instances of one unit from its channel probabilities (centres if the model has them);
    thresholds, ``min_size`` and ``min_confidence`` (objects of a lower mean foreground
    probability removed) left None are the model's (its config's ``postprocess``)."""
    post = lm.config["postprocess"]
    prob_threshold = model_threshold(prob_threshold, lm)
    seed_threshold = post["seed_threshold"] if seed_threshold is None else seed_threshold
    min_size = post["min_size"] if min_size is None else min_size
    fg = _foreground(probs, lm)
    if lm.has_centres and probs.ndim == 3:
        centre = probs[lm.outputs.index("centre")]
        labels = probabilities_to_labels(
            fg,
            centre,
            prob_threshold=prob_threshold,
            seed_threshold=seed_threshold,
            min_size=min_size,
        )
    else:
        import cc3d

        from ..morphology import face_connectivity

        labels = cc3d.connected_components(
            fg > prob_threshold, connectivity=face_connectivity(fg.ndim)
        ).astype(np.int32)
        labels = remove_small(labels, min_size)
    return remove_unconfident(labels, fg, model_confidence(min_confidence, lm))


def _auto_unit(unit, lm, runner, prob_threshold, probing, info, min_confidence=0.0, **kw):
    """``diameter="auto"`` on one plane: (labels, probabilities, scale, estimated diameter).

    The probe (0.25x, checked by a 0.125x look where it may have cut nuclei up; on planes too
    small for it, the Otsu mask) estimates the nucleus diameter; where it gives a scale
    (:func:`.scale.probe_scale`), the plane goes through one pass at that scale (none at
    0.25x or 0.125x: the probe's or the look's pass is the result). Otherwise the full-size
    pass is the result, unless the nuclei measured there call for upsampling. Time that only
    served the estimate is added to ``info["estimate_seconds"]``. ``min_confidence`` applies
    to the result's labels only, after the estimate.
    """
    post = lm.config["postprocess"]
    reference = post.get("diameter")
    cap = plane_cap(unit.shape, post)
    native_tiles = _tiles(unit.shape, lm, 1.0, kw["tile_size"], kw["overlap"])
    t = time.perf_counter()
    if probing:
        found, scale, coarse, looked = _estimate(unit, lm, runner, prob_threshold, **kw)
        info["looked"] += looked
        seconds = time.perf_counter() - t
        if scale in coarse:
            labels, probs, result_seconds = coarse[scale]
            info["estimate_seconds"] += seconds - result_seconds
            info["probe_seconds"] += seconds - result_seconds
            runner.total -= native_tiles
            labels = remove_unconfident(labels, _foreground(probs, lm), min_confidence)
            return labels_resized(labels, unit.shape), probs, scale, found
        info["probe_seconds"] += seconds
    else:
        found, scale = _mask_estimate(unit, reference, cap)
        seconds = time.perf_counter() - t
    info["estimate_seconds"] += seconds
    if scale is not None:
        runner.total -= native_tiles
        probs = _infer_pass(unit, lm, runner, scale, extra=True, **kw)
        labels = _labels_at_scale(
            probs, lm, scale, unit.shape, prob_threshold, min_confidence=min_confidence
        )
        return labels, probs, scale, found
    t = time.perf_counter()
    probs = _infer_pass(unit, lm, runner, 1.0, **kw)
    labels = _labels_at_scale(probs, lm, 1.0, unit.shape, prob_threshold)
    # Nothing at full size keeps the estimate, so a plane of nuclei too small is reported.
    found = median_diameter(labels, SPECK) or found
    scale = plane_upsampling(found, unit.shape, post)
    if scale != 1.0:
        info["estimate_seconds"] += time.perf_counter() - t
        info["remeasured"] += 1
        probs = _infer_pass(unit, lm, runner, scale, extra=True, **kw)
        labels = _labels_at_scale(
            probs, lm, scale, unit.shape, prob_threshold, min_confidence=min_confidence
        )
    else:
        labels = remove_unconfident(labels, _foreground(probs, lm), min_confidence)
    return labels, probs, scale, found


def _mask_estimate(unit, reference, cap):
    """A plane too small to probe: (its Otsu mask's diameter or None, the upsampling factor
    it gives or None: the full-size pass decides); no network pass."""
    found = mask_diameter(unit) if reference is not None else None
    scale = upsample_factor(found, reference, cap)
    return found, None if scale == 1.0 else scale


def _coarse_pass(x, lm, runner, prob_threshold, resize_by, plane_scale, extra=False, **kw):
    """``x`` resized by ``resize_by`` through the network, at ``plane_scale`` of the plane:
    (its input, labels at that scale, probabilities, estimated diameter in the plane's
    pixels or None, seconds)."""
    t = time.perf_counter()
    x = resize(x, scaled_shape(x.shape, resize_by))
    probs = _infer_pass(x, lm, runner, 1.0, extra=extra, **kw)
    labels = _labels_at_scale(probs, lm, plane_scale, None, prob_threshold, resize=False)
    found = median_diameter(labels, SPECK)
    found = None if found is None else found / plane_scale
    return x, labels, probs, found, time.perf_counter() - t


def _estimate(unit, lm, runner, prob_threshold, extra=False, result=True, **kw):
    """The probe of a plane, and its look where the probe may have cut nuclei up
    (:func:`.scale.needs_look`): (estimated diameter or None, :func:`.scale.probe_scale`,
    {scale: (labels, probabilities, seconds)} of the passes run at 0.25x and 0.125x,
    whether it looked). Estimates over half the plane (:func:`.scale.plausible`) count as
    nothing seen. ``result``: also run the 0.125x pass of a plane segmented at 0.125x that
    got no look.

    The look resizes the probe's input (1/4 of its pixels), not the plane.
    """
    post = lm.config["postprocess"]
    reference = post["diameter"]
    rule = size_rule(post)
    x, labels, probs, found, seconds = _coarse_pass(
        unit, lm, runner, prob_threshold, PROBE_SCALE, PROBE_SCALE, extra, **kw
    )
    coarse = {PROBE_SCALE: (labels, probs, seconds)}

    def look():  # the 0.125x pass, from the probe's input; its estimate
        _, labels, probs, seen, seconds = _coarse_pass(
            x, lm, runner, prob_threshold, LOOK_SCALE / PROBE_SCALE, LOOK_SCALE, True, **kw
        )
        coarse[LOOK_SCALE] = (labels, probs, seconds)
        return seen

    found = plausible(found, unit.shape)
    looked = sheet = False
    scales = down_scales(unit.shape, lm.config["divisor"])
    if LOOK_SCALE in scales:
        limit = look_limit(found, reference, rule["native_max"])
        mask = _foreground(probs, lm) > prob_threshold
        foreground = _foreground_diameter(mask, limit * PROBE_SCALE)
        foreground = None if foreground is None else foreground / PROBE_SCALE
        if needs_look(found, foreground, reference, rule["native_max"]):
            looked = True
            seen = look()
            sheet = seen is not None and plausible(seen, unit.shape) is None
            seen = checked_estimate(found, plausible(seen, unit.shape), reference)
            if seen != found:  # the probe cut nuclei up: 0.25x will not do
                return seen, LOOK_SCALE, coarse, looked
    scale = probe_scale(found, reference, plane_cap(unit.shape, post), scales=scales, **rule)
    if sheet and scale is not None and scale < 1.0:
        # The look saw one sheet: small nuclei clumped at both coarse scales, so the probe's
        # size may be a clump's (a dense DSB plane of 13-px nuclei, rotated: 65 px, 0.5x).
        # The full-size pass measures them.
        scale = None
    if result and scale == LOOK_SCALE and scale not in coarse:  # from the probe's input
        look()
    return found, scale, coarse, looked


def _foreground_diameter(mask, above):
    """Nucleus diameter of a probe's foreground ``mask`` (:func:`napari_binseg.size.
    estimate_diameter`, pixels) where it may exceed ``above``, else None: its largest
    component is too small to hold a wider inscribed disc, and the distance transform (most
    of the cost on a probe of 64x64 pixels) is skipped."""
    from ..morphology import label
    from ..size import SHAPE_FACTOR, estimate_diameter

    labels, n = label(mask, 8)
    if not n:
        return None
    largest = int(np.bincount(labels.ravel())[1:].max())
    if 2.0 * SHAPE_FACTOR * math.sqrt(largest / math.pi) <= above:
        return None
    return estimate_diameter(labels)
