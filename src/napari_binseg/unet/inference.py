"""U-Net inference: probabilities and instance labels for 2D images, stacks and time series.

Every plane (or volume, for a 3D network) is normalized by its own intensity percentiles
(:mod:`.normalize`), run through the network (:mod:`.backends`) in one pass when it fits in a
tile and otherwise with MONAI's sliding-window inference (:mod:`.tiling`: Gaussian-blended
overlapping tiles, so the network's memory stays bounded by the tile batch; the plane, resized,
and its output are held whole, hence :data:`.scale.MAX_UPSAMPLED_PIXELS`), at the scale that
brings its nuclei to the model's size (:mod:`.scale`; one plane's passes are in
:mod:`.passes`), then turned into instances: nucleus centres are seeds, grown through the
predicted foreground (:mod:`._postprocess`).
Stacks ``(Z, Y, X)``, time series ``(T, Y, X)`` and ``(T, Z, Y, X)`` go plane by plane
through a 2D network; dask arrays are read one plane at a time.

References
----------
.. [1] Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image
   Segmentation", MICCAI 2015.
.. [2] Cardoso et al., "MONAI: An open-source framework for deep learning in healthcare",
   arXiv:2211.02701 (2022).
"""

import time
import warnings

import numpy as np

from .._validation import check_image, check_rgb
from ._postprocess import as_count_labels, continue_numbering, remove_small
from .backends import BACKENDS, PRECISIONS, _Runner
from .normalize import normalize_plane, percentile_range
from .passes import (
    _auto_unit,
    _check_options,
    _estimate,
    _foreground,
    _infer_pass,
    _labels_at_scale,
    _mask_estimate,
    _normalized_units,
    _probing,
    _tiles,
    _units,
    labels_from_probabilities,
    model_confidence,
    model_threshold,
    probabilities_at_scale,
)
from .scale import (
    PROBE_SCALE,
    SPECK,
    check_diameter,
    median_diameter,
    plane_cap,
    rescale_factor,
    resize,
    upsample_factor,
)

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "labels_from_probabilities",
    "median_diameter",
    "normalize_plane",
    "percentile_range",
    "predict",
    "estimate_diameter",
    "predict_channels",
    "probabilities_at_scale",
    "rescale_factor",
    "segment",
    "upsample_factor",
]


def _prepare(image, model, device, **options):
    """The checked image and the loaded model; ``options`` checked by ``UNetOptions``."""
    from .network import load_model

    image = check_image(image, min_ndim=2, max_ndim=5)
    lm = load_model(model, device=device)
    if lm.spatial_dims == 2 and image.ndim > 4:
        raise ValueError(f"image must have 2 to 4 dimensions, got shape {image.shape}")
    if image.ndim == 3 and image.shape[-1] in (3, 4) and min(image.shape[:2]) > 4:
        check_rgb(image)
    _check_options(**options)
    return image, lm


def predict_channels(
    image,
    model="nuclei",
    *,
    device="auto",
    tile_size=1024,
    overlap=0.25,
    batch_size=4,
    precision="auto",
    backend="auto",
    progress=None,
):
    """All output channels of the network, as probabilities.

    Parameters are those of :func:`predict`.

    Returns
    -------
    probabilities : (C, ...) ndarray of float32
        ``C`` output channels followed by the image's shape (for the bundled model channel 0
        is the foreground and channel 1 the nucleus centres).

    Examples
    --------
    >>> import numpy as np
    >>> from napari_binseg.unet import predict_channels
    >>> predict_channels(np.zeros((64, 64), np.uint8)).shape  # doctest: +SKIP
    (2, 64, 64)
    """
    image, lm, passes = _full_size_passes(
        image, model, device, tile_size, overlap, batch_size, precision, backend, progress
    )
    out = np.empty((lm.out_channels,) + tuple(image.shape), np.float32)
    for idx, probs, _ in passes:
        out[(slice(None),) + idx] = probs
    return out


def predict(
    image,
    model="nuclei",
    *,
    device="auto",
    tile_size=1024,
    overlap=0.25,
    batch_size=4,
    precision="auto",
    backend="auto",
    progress=None,
):
    """Foreground probability map of nuclei from a U-Net.

    Parameters
    ----------
    image : (Y, X), (Z|T, Y, X) or (T, Z, Y, X) array-like
        Single-channel intensity image (numpy, dask or array-like), any numeric dtype. Stacks
        and time series go plane by plane through a 2D network (volume by volume through a
        3D one). Dask arrays are read one plane at a time.
        NaN and infinite pixels are left out of the normalization and count as background
        (probability 0, label 0).
    model : str, path-like or LoadedModel
        ``"nuclei"`` (bundled, trained on DSB 2018 fluorescence nuclei) or a user model, see
        :func:`napari_binseg.unet.network.load_model`.
    device : {"auto", "cpu", "cuda", "mps"}
        ``"auto"``: CUDA, then MPS, then CPU.
    tile_size : int
        Largest side of a tile: planes up to this size go through the network in one pass,
        larger ones through MONAI's sliding window with tiles of at most this side (sized to
        cover the plane with as few pixels as possible). Memory grows with
        ``batch_size * tile_size**2``; on CPU one 1024x1024 pass is ~3x faster than 25
        overlapping 256x256 tiles.
    overlap : float
        Fraction by which neighbouring tiles overlap (Gaussian-weighted blending).
    batch_size : int
        Tiles per network call.
    precision : {"auto", "float32", "bfloat16"}
        ``"auto"`` uses bfloat16 on CPUs with bf16 matrix units (AMX), float32 elsewhere.
    backend : {"auto", "torch", "openvino"}
        ``"auto"`` runs the network with OpenVINO on the CPU when the package is installed and
        the network converts (2-3x faster than PyTorch here, same float32 results), else with
        PyTorch (eager, ``torch.inference_mode``).
    progress : callable, optional
        ``progress(done, total)`` after each batch of tiles and after each plane, in tiles.
        An exception raised by it propagates and stops the prediction (cancel).

    Returns
    -------
    probability : ndarray of float32
        Same shape as ``image``, values in [0, 1].

    Raises
    ------
    ValueError
        Bad image (empty, non-numeric, RGB, too few dimensions for the model), bad options,
        or a model that cannot be loaded.

    References
    ----------
    .. [1] Ronneberger, Fischer and Brox, "U-Net: Convolutional Networks for Biomedical Image
       Segmentation", MICCAI 2015.
    .. [2] Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018 Data
       Science Bowl", Nature Methods 16, 1247-1253 (2019).

    Examples
    --------
    >>> import napari_binseg as nb
    >>> from napari_binseg._sample_data import load_sample
    >>> prob = nb.predict(load_sample("nuclei_2d_small")[0])  # doctest: +SKIP
    >>> prob.shape, prob.dtype  # doctest: +SKIP
    ((256, 256), dtype('float32'))
    """
    image, lm, passes = _full_size_passes(
        image, model, device, tile_size, overlap, batch_size, precision, backend, progress
    )
    out = np.empty(tuple(image.shape), np.float32)
    for idx, probs, bad in passes:
        fg = _foreground(probs, lm)
        out[idx] = fg if bad is None else np.where(bad, np.float32(0), fg)
    return out


def _full_size_passes(
    image, model, device, tile_size, overlap, batch_size, precision, backend, progress
):
    """The checked image, the model and an iterator of (index, channel probabilities,
    non-finite mask) of each unit at its own size, for :func:`predict` and
    :func:`predict_channels` (their arguments, in their order)."""
    kw = dict(tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    image, lm = _prepare(image, model, device, precision=precision, backend=backend, **kw)
    units = _units(image, lm)
    spatial = image.shape[image.ndim - lm.spatial_dims :]
    runner = _Runner(
        lm,
        precision=precision,
        progress=progress,
        total=_tiles(spatial, lm, 1.0, tile_size, overlap) * len(units),
        backend=backend,
    )

    def passes():
        for idx, unit, bad in _normalized_units(image, lm):
            probs = _infer_pass(unit, lm, runner, 1.0, **kw)
            if progress is not None:
                progress(runner.done, runner.total)
            yield idx, probs, bad

    return image, lm, passes()


def segment(
    image,
    model="nuclei",
    *,
    device="auto",
    tile_size=1024,
    overlap=0.25,
    batch_size=4,
    prob_threshold=None,
    min_confidence=None,
    diameter="auto",
    precision="auto",
    backend="auto",
    return_probabilities=False,
    return_info=False,
    spacing=None,
    progress=None,
    axes=None,
    mode="accurate",
):
    """Instance labels of nuclei from a U-Net: centre seeds grown into the foreground.

    Parameters
    ----------
    image, model, device, tile_size, overlap, batch_size, precision, backend, progress
        As in :func:`predict`.
    prob_threshold : float, optional
        Foreground probability above which a pixel belongs to a nucleus; default: the
        model's own (``postprocess.prob_threshold`` of its config, 0.5 for the bundled
        model).
    min_confidence : float, optional
        Objects whose mean foreground probability (at the scale their plane was segmented)
        is under this are removed; 0 keeps every object. Default: the model's own
        (``postprocess.min_confidence`` of its config, 0.85 for the bundled model; 0 for a
        config without it). Planes only: a z-stack's 3D objects keep every object.
    diameter : "auto", float or None
        Typical nucleus diameter in pixels, to bring nuclei to the size the model segments
        best (its ``postprocess.diameter``, the median nucleus of its training labels: 19.3
        pixels for the bundled model). ``"auto"``: each plane's nucleus size is estimated by
        a probe pass at 0.25x, checked by a pass at 0.125x where the probe may have cut
        nuclei of ~190 pixels or more into pieces; planes of nuclei over 2.5x the model's
        size (48 pixels) are segmented at 0.5x or 0.25x, over 193 pixels (or where the
        check overruled the probe) at 0.125x (nuclei up to ~380 pixels), planes of nuclei
        at least 25% smaller than the model's are upsampled (at most 3x: the config's
        ``postprocess.max_scale``), the others
        segmented at full size, and upsampled if their nuclei measured there are small (see
        :mod:`napari_binseg.unet.scale`). A number:
        each plane is resized by the model's diameter over it (1/16 to 4x), in one pass.
        ``None``: no resizing. Labels always come at the image's own size.
    return_probabilities : bool
        Also return the foreground probability map (what :func:`predict` gives), from the
        same network pass (resized back to the image when the plane was resized).
    return_info : bool
        Also return a dict describing the run (for layer metadata, tables and the CLI):
        ``prob_threshold`` and ``min_confidence`` (the ones used), ``diameter`` (px: the
        median over planes of the nucleus diameter that chose each plane's scale, i.e. the
        estimate for ``"auto"``, the given number, or the measured median of the labels for
        ``None``, specks under
        :data:`~napari_binseg.unet.scale.SPECK` of it left out; ``None`` when no nucleus was
        found),
        ``diameter_um`` (with ``spacing``), ``diameters`` and ``scales`` (per plane),
        ``nonfinite_pixels`` (NaN/inf pixels, segmented as background), ``seconds``,
        ``estimate_seconds`` (network passes that only served the size estimate: the probe
        and the 0.125x look when their pass is not the result, and the full-size pass of
        planes upsampled after it), ``probe_seconds`` (the probe's and look's share of it),
        ``remeasured`` (planes upsampled after a full-size pass) and ``looked`` (planes
        whose probe was checked at 0.125x).
    spacing : float or (float, float), optional
        Pixel size (µm) along Y and X, only to report ``diameter_um``; for z-stacks
        ``(dz, dy, dx)``, which also sets the accurate mode's resampling.
    axes : {"YX", "ZYX", "TYX", "TZYX"}, optional
        What the dimensions are (:mod:`napari_binseg.axes`); default by ``image.ndim``: 3D is a
        z-stack (``"ZYX"``), 4D ``"TZYX"``. With a 2D model, z-stacks are segmented as volumes
        (3D objects, :func:`napari_binseg.unet.volume.segment_volume`; ``diameter`` then in
        lateral pixels, estimated once per stack); ``"TYX"`` segments each plane on its own.
        A 3D model runs on each volume natively.
    mode : {"accurate", "fast"}
        Z-stacks through a 2D model: ``"accurate"`` averages XY, XZ and YZ predictions of the
        near-isotropic stack and grows 3D seeds; ``"fast"`` grows 3D seeds through the XY
        planes' predictions (one pass).

    Returns
    -------
    labels : ndarray of uint16 (fewer than 65536 nuclei) or uint32
        Same shape as ``image`` (the type :func:`napari_binseg.count_cells` gives); 0 =
        background, nuclei numbered 1..n. Planes of a stack or
        time series are segmented independently, with numbers continuing from plane to plane
        (an object never spans two planes with a 2D network).
    probability : ndarray of float32
        Only with ``return_probabilities=True``.
    info : dict
        Only with ``return_info=True`` (last).

    Notes
    -----
    With the bundled model, seeds are connected components of the centre probability above
    the model's seed threshold inside the foreground; every foreground pixel joins its nearest
    seed through the foreground (breadth-first growth), so touching nuclei stay apart;
    foreground without a seed is kept as its own object, and objects under ``min_size``
    pixels (model config) are removed. A user model without a centre channel gives connected
    components of the foreground.

    Small nuclei merge and vanish at a U-Net's native scale, and nuclei several times larger
    than the training nuclei come out as fragments; bringing them to the training size is
    the size normalization of Cellpose [1]_. The probe costs 1/16 of a full-size pass in
    pixels and the look 1/64 (more on small planes, where each network call has a fixed
    cost); a plane pays a full-size pass for the estimate only when that pass, run as its
    result, finds nuclei small enough to upsample. Measured results are in the model card
    (``benchmarks/bench_scale_sweep.py``).

    References
    ----------
    .. [1] Stringer, Wang, Michaelos and Pachitariu, "Cellpose: a generalist algorithm for
       cellular segmentation", Nature Methods 18, 100-106 (2021).

    Examples
    --------
    >>> import napari_binseg as nb
    >>> from napari_binseg._sample_data import load_sample
    >>> labels = nb.segment(load_sample("nuclei_2d_small")[0])  # doctest: +SKIP
    >>> int(labels.max()) > 20  # doctest: +SKIP
    True
    """
    image, lm = _prepare(
        image,
        model,
        device,
        tile_size=tile_size,
        overlap=overlap,
        batch_size=batch_size,
        prob_threshold=prob_threshold,
        min_confidence=min_confidence,
        diameter=diameter,
        precision=precision,
        backend=backend,
    )
    check_diameter(diameter, lm)
    prob_threshold = model_threshold(prob_threshold, lm)
    min_confidence = model_confidence(min_confidence, lm)
    if axes is not None or image.ndim <= 4:
        from ..axes import resolve_axes

        axes = resolve_axes(axes, image.ndim)
    if lm.spatial_dims == 2 and axes is not None and "Z" in axes:
        # A z-stack through a 2D network: 3D objects (unet/volume.py).
        from .volume import segment_volume

        return segment_volume(
            image, lm, axes=axes, spacing=spacing, mode=mode, diameter=diameter,
            prob_threshold=prob_threshold, return_probabilities=return_probabilities,
            return_info=return_info, progress=progress, device=device, tile_size=tile_size,
            overlap=overlap, batch_size=batch_size, precision=precision, backend=backend,
        )  # fmt: skip
    pixel = _pixel_size(spacing)
    t0 = time.perf_counter()
    kw = dict(tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    units = _units(image, lm)
    spatial = image.shape[image.ndim - lm.spatial_dims :]
    auto = diameter == "auto" and lm.spatial_dims == 2
    fixed = 1.0 if auto else rescale_factor(diameter, lm)
    probing = auto and _probing(lm, spatial)
    per_unit = _tiles(spatial, lm, fixed, tile_size, overlap)
    if probing:
        per_unit += _tiles(spatial, lm, PROBE_SCALE, tile_size, overlap)
    runner = _Runner(
        lm, precision=precision, progress=progress, total=per_unit * len(units), backend=backend
    )
    out = np.zeros(tuple(image.shape), np.int32)
    prob = np.empty(tuple(image.shape), np.float32) if return_probabilities else None
    info = {
        "prob_threshold": prob_threshold,
        "min_confidence": min_confidence,
        "diameters": [],
        "scales": [],
        "nonfinite_pixels": 0,
        "estimate_seconds": 0.0,
        "probe_seconds": 0.0,
        "remeasured": 0,
        "looked": 0,
    }
    offset = 0
    for idx, unit, bad in _normalized_units(image, lm):
        if auto:
            labels, probs, scale, found = _auto_unit(
                unit, lm, runner, prob_threshold, probing, info, min_confidence, **kw
            )
        else:
            scale = fixed
            probs = _infer_pass(unit, lm, runner, scale, **kw)
            labels = _labels_at_scale(
                probs, lm, scale, unit.shape, prob_threshold, min_confidence=min_confidence
            )
            # A 3D model takes "auto" as None: no resize, the labels' median reported.
            measured = diameter is None or diameter == "auto"
            found = median_diameter(labels, SPECK) if measured else diameter
        if bad is not None:
            info["nonfinite_pixels"] += int(bad.sum())
            labels[bad] = 0
            labels = remove_small(labels, 1)
        offset = continue_numbering(labels, offset)
        out[idx] = labels
        if prob is not None:
            fg = _foreground(probs, lm)
            fg = fg if scale == 1.0 else resize(fg, unit.shape)
            prob[idx] = fg if bad is None else np.where(bad, np.float32(0), fg)
        info["diameters"].append(None if found is None else float(found))
        info["scales"].append(float(scale))
        if progress is not None:
            progress(runner.done, runner.total)
    known = [d for d in info["diameters"] if d is not None]
    info["diameter"] = float(np.median(known)) if known else None
    if auto:
        _warn_too_small(info, lm)
    info["diameter_um"] = info["diameter"] * pixel if pixel is not None and known else None
    info["seconds"] = time.perf_counter() - t0
    return _returned(out, prob, info if return_info else None)


class NucleiTooSmall(UserWarning):
    """``segment(diameter="auto")`` found nuclei too small for the model even upsampled: its
    labels likely miss most of them."""


def _warn_too_small(info, lm):
    """Warn (:class:`NucleiTooSmall`) where planes' nuclei stay under :data:`.scale.
    SMALLEST` times the model's diameter after their resize, or are under :data:`.scale.
    SMALLEST_NATIVE` times it before (too few pixels for the resize to help)."""
    from . import scale as sc

    post = lm.config["postprocess"]
    reference = post.get("diameter")
    if reference is None:
        return
    small = [
        (d, s)
        for d, s in zip(info["diameters"], info["scales"], strict=True)
        if d is not None
        and (d * s < sc.SMALLEST * reference or d < sc.SMALLEST_NATIVE * reference)
    ]
    if small:
        # A resize that reached the model's sizes: the nuclei have too little detail left.
        detail = ""
        if any(d * s >= sc.SMALLEST * reference for d, s in small):
            detail = (
                f", and nuclei under {sc.SMALLEST_NATIVE * reference:.1f} px have too few "
                "pixels for upsampling to help"
            )
        # The planes' own scale: a large plane is upsampled less than the config's cap.
        top = max(s for _, s in small)
        resized = f"even upsampled {top:g}x" if top > 1 else "at their own size"
        if top < sc.max_scale(post):
            resized += ", the most the plane's size allows"
        warnings.warn(
            f"nuclei of about {np.median([d for d, _ in small]):.1f} px in {len(small)} of "
            f"{len(info['scales'])} planes are too small for model {lm.name!r} {resized} (it "
            f"sees nuclei of {sc.SMALLEST * reference:.0f} px and more{detail}): its labels "
            "likely miss most of them; the classic threshold and count work at that size",
            NucleiTooSmall,
            stacklevel=3,
        )


def _returned(labels, prob, info):
    """``labels`` (int32 ``0..n``, returned as uint16 or uint32 like the count's) alone, or
    with the probability map and the info that are not None."""
    labels = as_count_labels(labels)
    result = (labels,) + tuple(x for x in (prob, info) if x is not None)
    return result if len(result) > 1 else labels


def estimate_diameter(
    image,
    model="nuclei",
    *,
    device="auto",
    tile_size=1024,
    overlap=0.25,
    batch_size=4,
    prob_threshold=None,
    precision="auto",
    backend="auto",
):
    """Typical nucleus diameter (pixels) as ``segment(diameter="auto")`` measures it.

    Each plane goes through the 0.25x probe, checked at 0.125x where it may have cut large
    nuclei up (planes too small for it: their Otsu mask), whose median nucleus is the
    estimate where it chooses the plane's scale (:mod:`napari_binseg.unet.scale`); the
    other planes (mid-sized nuclei, none found) are measured on the full-size pass, as
    :func:`segment` does. Costs 1/16 of a full pass per plane (1/64 more with the check),
    one full pass for those. Parameters as in :func:`segment`.

    Returns
    -------
    diameter : float or None
        Median over planes of each plane's median nucleus (equivalent-circle diameter;
        specks under :data:`~napari_binseg.unet.scale.SPECK` of the median left out);
        ``None`` when no nucleus was found.

    Examples
    --------
    >>> import napari_binseg as nb
    >>> from napari_binseg._sample_data import load_sample
    >>> from napari_binseg.unet.inference import estimate_diameter
    >>> round(estimate_diameter(load_sample("nuclei_2d_small")[0]))  # doctest: +SKIP
    28
    """
    kw = dict(tile_size=tile_size, overlap=overlap, batch_size=batch_size)
    image, lm = _prepare(
        image,
        model,
        device,
        prob_threshold=prob_threshold,
        precision=precision,
        backend=backend,
        **kw,
    )
    prob_threshold = model_threshold(prob_threshold, lm)
    post = lm.config["postprocess"]
    reference = post.get("diameter")
    probing = _probing(lm, image.shape[image.ndim - lm.spatial_dims :])
    runner = _Runner(lm, precision=precision, progress=None, total=0, backend=backend)
    found = []
    for _, unit, _ in _normalized_units(image, lm):
        if probing:
            d, scale = _estimate(unit, lm, runner, prob_threshold, True, False, **kw)[:2]
        else:
            d, scale = _mask_estimate(unit, reference, plane_cap(unit.shape, post))
        if scale is None:
            probs = _infer_pass(unit, lm, runner, 1.0, extra=True, **kw)
            d = median_diameter(
                _labels_at_scale(probs, lm, 1.0, unit.shape, prob_threshold), SPECK
            )
        if d is not None:
            found.append(d)
    return float(np.median(found)) if found else None


def _pixel_size(spacing):
    """In-plane pixel size (µm; geometric mean of Y and X) of ``spacing``, or None."""
    if spacing is None:
        return None
    values = np.atleast_1d(np.asarray(spacing, dtype=float))[-2:]
    if not (values.size and np.all(np.isfinite(values)) and np.all(values > 0)):
        raise ValueError(f"spacing must be positive pixel sizes (µm), got {spacing!r}")
    return float(np.sqrt(np.prod(values))) if values.size == 2 else float(values[0])
