"""Nucleus size: the automatic estimate, the resize factor it gives, and the resizing itself.

A U-Net segments nuclei well only near the sizes it was trained on (the bundled model: a
median training nucleus of 19.3 pixels, training crops rescaled 0.6-1.6x, so nuclei of about
10-55 pixels). ``segment(diameter="auto")`` therefore brings each plane's nuclei into that
range, down or up (Cellpose's size normalization [1]_):

1. A **probe**: the plane at :data:`PROBE_SCALE` (0.25x, 1/16 of a full pass) through the
   network. Nuclei up to ~2.5x the model's diameter there (~190 pixels in the plane) come out
   whole, small ones as specks whose median size still follows the nucleus size; fragments
   of a large nucleus, which fool a measurement at full size (a 100-pixel nucleus comes out
   as ~20-pixel pieces), do not form at this scale. Estimated diameter: the probe's median
   nucleus over 0.25.
2. A **look**: larger nuclei come out of the probe as pieces of about the model's size,
   which can pass for nuclei of any size (a DSB image rescaled 5x, nuclei of 202 pixels:
   63 pixels by the bundled model's probe, 14 by a fine-tuned one, which then upsampled the
   plane into 1389 pieces of 18 nuclei). Probes that may have done so (:func:`needs_look`:
   estimates over :data:`NATIVE_MAX` times the model's diameter, or a probe foreground
   whose inscribed nucleus diameter is over :data:`FRAGMENTS` times its objects') are
   checked at :data:`LOOK_SCALE` (0.125x of the probe's input, 1/64 of a pass), where
   nuclei of up to ~380 pixels are whole; its estimate wins where it is :data:`LOOK_GAIN`
   times larger with nuclei of at least :data:`LOOK_MIN` times the model's diameter there
   (:func:`checked_estimate`). Planes under 252 pixels a side get no look. An estimate over
   half the plane's shorter side (:func:`plausible`: merged small nuclei seen as one blob)
   counts as nothing seen; where the look saw such a sheet, the probe's estimate may be a
   clump's too and does not downsample the plane (the full-size pass decides).
3. Nuclei estimated above :data:`NATIVE_MAX` times the model's diameter (48 pixels for the
   bundled model) are segmented at 0.5x or 0.25x, whichever brings them closer to
   :data:`DOWN_TARGET` times the model's diameter (29 pixels), and above
   :data:`COARSE_FROM` times it (193 pixels), or where the look overruled the probe, at
   0.125x; at 0.25x and 0.125x the probe's or the look's own pass is the result, and a 0.5x
   pass costs 4x the probe. A model's config
   may set its own multiples (``postprocess.native_max``, ``down_target``).
4. Small nuclei are upsampled by the estimate times :data:`PROBE_SMALL`
   (:func:`upsample_factor`: by the model's diameter over it, rounded to a quarter, from
   1.25x, at most the config's ``max_scale`` (:data:`MAX_SCALE` in the bundled model's and
   those training writes, :data:`LEGACY_MAX_SCALE` where a config has none), and within
   :data:`MAX_UPSAMPLED_PIXELS`: :func:`plane_upsampling`), in one pass: the estimate costs
   the probe alone.
5. Planes too small to probe (under 126 pixels a side for the bundled model), where every
   network call costs about the same fixed time, are upsampled in the same way by the
   nuclei of their Otsu mask (:func:`mask_diameter`, no network pass; on the DSB training
   images rescaled to 64-90 pixels it upsamples the planes the full-size measurement does,
   at the same pooled F1).
6. Other planes (mid-sized nuclei, no nucleus in the probe or the mask) go through the
   full-size pass, which is their result; their nuclei are measured there too (for free),
   and planes where that measurement calls for upsampling are run again at the factor it
   gives (the only case where the estimate costs a full-size pass; 1-6 of the 55 DSB
   validation planes at 0.5-1.5x).

:func:`probe_scale` is steps 3-4. The estimate's cost is the probe's (1/16 of a full pass in
pixels), the look's where one runs and is not the result (1/64), plus the full-size pass of
the planes of step 6. Measured costs: the model card
(``benchmarks/bench_scale_sweep.py``).

References
----------
.. [1] Stringer, Wang, Michaelos and Pachitariu, "Cellpose: a generalist algorithm for
   cellular segmentation", Nature Methods 18, 100-106 (2021).
"""

import math

import numpy as np

from ._postprocess import remove_small

#: Scale of the probe pass of ``diameter="auto"``.
PROBE_SCALE = 0.25

#: Largest upsampling of small nuclei: the ``postprocess.max_scale`` that training writes into
#: a new model's config (and the bundled config's). 3x brings nuclei of 5 pixels to 15, inside
#: the bundled model's training sizes. Chosen on 120 DSB *training* images rescaled 0.25x and
#: 0.35x (nuclei of 2-14 pixels), pooled F1 with 2x / 3x / 4x: 0.579 / 0.596 / 0.586 at 0.25x
#: and 0.743 / 0.751 / 0.749 at 0.35x (true diameter given: 0.609 and 0.764); 3x cost 1.3-1.5x
#: the run time of 2x there.
MAX_SCALE = 3.0

#: The cap of a config without ``postprocess.max_scale`` (a hand-written or foreign one): every
#: release before 3x capped such a model at 2x, and it keeps running as it did.
LEGACY_MAX_SCALE = 2.0

#: Largest resize of a plane for its nuclei's size: a given ``diameter`` resizes by at most
#: this, and a config's ``max_scale`` may not exceed it.
LARGEST_RESIZE = 4.0

#: Nuclei still under this multiple of the model's diameter after ``diameter="auto"``'s
#: resize are too small for it to see: ``segment`` warns (:class:`~napari_binseg.unet.
#: inference.NucleiTooSmall`). The packaged sample at 0.25x (nuclei of 3 px, 9 px after
#: 3x): 0 of 36 nuclei found, with the true diameter given too; at 0.5x (6.5 px; the probe
#: measures clumps of 14.3 px and upsamples 1.5x): F1 0.96.
SMALLEST = 0.5

#: Nuclei measured under this multiple of the model's diameter (4.3 px for the bundled model)
#: in the image itself have too few pixels for any upsampling to bring back: ``segment``
#: warns as for :data:`SMALLEST`, even where the resize reaches that size. Midway between the
#: packaged 256 x 256 sample at 0.3x (estimate 4.2 px, 12 px after 3x: F1 0.05, 1 of 36
#: nuclei, the true diameter given too) and 2 of the 55 DSB validation images rescaled 0.5x
#: (estimates 4.5 px, F1 0.89 and 0.90; 0.25, 4.8 px, warned on them). The sample at 0.4x
#: (4.7 px, F1 0.53) goes unwarned: estimates of good and poor planes overlap there.
SMALLEST_NATIVE = 0.225

#: Most pixels ``diameter="auto"`` upsamples a plane to. The resized plane, its probabilities
#: and labels are held whole (about 64 bytes a pixel: a 1024 x 1024 plane at 3x adds a peak of
#: ~600 MB), so larger planes are upsampled less (:func:`plane_cap`): a 4096 x 4096 plane at
#: most 2x (~4 GB, as with the 2x cap before), an 8192 x 8192 plane not at all (was ~17 GB).
MAX_UPSAMPLED_PIXELS = 1 << 26

#: Scale of the coarse look that checks a probe which may have seen fragments (1/64 of a
#: full pass; its pass is the result when the plane is segmented at this scale).
LOOK_SCALE = 0.125

#: Nuclei estimated above this multiple of the model's diameter are segmented downsampled
#: (chosen on the DSB validation split rescaled 1-3x: real DSB nuclei of 45-52 px do as well
#: at full size, upsampled ones do better at 0.5x). Default of a config's
#: ``postprocess.native_max``.
NATIVE_MAX = 2.5

#: Downsampled planes go to 0.5x or 0.25x, whichever brings nuclei closest to this multiple
#: of the model's diameter. Default of a config's ``postprocess.down_target``.
DOWN_TARGET = 1.5

#: Nuclei estimated above this multiple of the model's diameter (193 px for the bundled
#: model, NATIVE_MAX / PROBE_SCALE: beyond what the model keeps whole at 0.25x) are
#: segmented at 0.125x, and so are planes whose look overruled the probe. Chosen on the even
#: rows of s-bsst265 at 1x (real 63x nuclei of 150-190 px come out better at 0.25x: pooled
#: 0.835 against 0.832 with 130 px) over DSB *training* images rescaled 3-8x (8x: 0.875
#: against 0.884 with 130 px; 3-6x within 0.004).
COARSE_FROM = 10.0

#: The probe's estimate times this decides upsampling (chosen on DSB *training* images
#: rescaled 0.25-1.4x: the same pooled F1 as the full-size measurement, half as many planes
#: measured again at full size; the probe sees nuclei of 14-24 pixels 5-10% too large).
PROBE_SMALL = 0.9

#: The scales a downsampled plane may take (powers of two: 0.25 reuses the probe, 0.125 the
#: look).
DOWN_SCALES = (0.5, 0.25, 0.125)

#: A probe whose foreground's nucleus diameter (inscribed, :func:`napari_binseg.size.
#: estimate_diameter`: touching nuclei count one by one) exceeds its median object this many
#: times may have cut large nuclei into pieces: the plane gets a look. Normal planes of DSB
#: training images at 0.5-8x stay under 1.4 at mid sizes, up to 3.5 for nuclei of 2-3 px at
#: 0.25x (a wasted look, not a wrong scale); the DSB validation image whose 202-px nuclei the
#: probe cut up gave 4.5 (bundled model) and 16 (a fine-tuned one).
FRAGMENTS = 2.0

#: The same for estimates over ``native_max`` times the model's diameter, whose nuclei are
#: whole at 0.25x unless larger still (chosen on DSB training images rescaled 3-8x and
#: s-bsst265 even rows at 1-2x: 1.2-1.5 gave the pooled F1 of a look at every such plane,
#: with 1-9 looks per 40 planes instead of 41; 1.75 missed one at 6x).
FRAGMENTS_LARGE = 1.35

#: The look's estimate replaces the probe's when it is this many times larger (the probe cut
#: nuclei it could not see whole) ...
LOOK_GAIN = 1.4

#: ... and its nuclei at 0.125x are at least this multiple of the model's diameter (124 px in
#: the plane for the bundled model; smaller ones are specks or clumps of small nuclei: up to
#: 70 px in the plane for nuclei of 10 px on DSB training images, and the 90-degree rotation
#: of a dense DSB validation image of 17-px nuclei looked 112 px, which at 0.6 sent it to
#: 0.125x, 0 nuclei found, while the image and its mirrors stayed at 1.25x, F1 0.7). Every
#: look that overruled a probe on DSB training images rescaled 1-8x and s-bsst265's even rows
#: at 1-2x, rotated or not (13, all nuclei of 176-359 px), looked 189 px or more. LOOK_GAIN
#: chosen on DSB training images rescaled 0.5-8x.
LOOK_MIN = 0.8

#: The network's objects under this fraction of the median object's area are specks, not
#: nuclei, and do not count in an estimate (:func:`median_diameter`). A probe keeps objects
#: down to the model's ``min_size`` times 0.0625 (1.5 pixels for the bundled model), and
#: specks of 2-4 pixels pulled the median below the truth: a DSB validation image rescaled 3x
#: (nuclei of 59 pixels) was estimated 44-49 pixels with 37-50 specks at the 0.25x probe,
#: 52 without, so weights that made a few more specks segmented it at full size into 403
#: pieces of 196 nuclei. Relative to the plain median, not to the area-weighted one: merged
#: blobs of a dense plane outweigh its nuclei (that image at 1x: 98 pixels); it helps while
#: the specks are fewer than the nuclei. Not tuned.
SPECK = 0.1

#: An estimate over this fraction of the plane's shorter side is a sheet of merged nuclei,
#: not a nucleus, and is dropped (a sanity bound, not tuned: no DSB training or s-bsst265
#: plane at 0.5-8x comes near it; on a dense DSB validation image of ~200 nuclei, probe and
#: look saw one blob of 340-680 px and sent the plane to 0.125x, 0 nuclei found).
PLANE_MAX = 0.5


def median_diameter(labels, floor=0.0):
    """Equivalent-circle diameter (pixels) of the median-area object.

    Parameters
    ----------
    labels : ndarray or sequence of ndarray
        One label image, or several (objects of all of them pooled).
    floor : float
        Objects under this fraction of the median area are left out and the median taken
        again: :data:`SPECK` for the network's own objects.

    Returns
    -------
    diameter : float or None
        ``None`` when there are no objects.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((20, 20), int); labels[2:12, 2:12] = 1
    >>> round(median_diameter(labels), 2)
    11.28
    """
    images = [labels] if isinstance(labels, np.ndarray) else list(labels)
    areas = np.concatenate([np.bincount(np.asarray(im).ravel())[1:] for im in images] or [[]])
    areas = areas[areas > 0]
    if not areas.size:
        return None
    if floor:
        areas = areas[areas >= floor * np.median(areas)]
    return 2.0 * math.sqrt(float(np.median(areas)) / math.pi)


def upsample_factor(found, reference, max_scale=MAX_SCALE):
    """``reference / found`` rounded to a quarter, capped at ``max_scale``; 1.0 under 1.25.

    The rule of ``segment(diameter="auto")`` for small nuclei (and of training with
    ``upsample_small``): nuclei of median diameter ``found`` are upsampled when they are at
    least 25% smaller than the ``reference``. ``None`` for either gives 1.0.
    """
    if not found or reference is None:
        return 1.0
    factor = min(round(4.0 * reference / found) / 4.0, float(max_scale))
    return factor if factor >= 1.25 else 1.0


def max_scale(post):
    """A config ``postprocess`` section's ``max_scale`` (:data:`LEGACY_MAX_SCALE` when absent:
    training and :func:`~napari_binseg.unet.training.export_bundle` always write it)."""
    return post.get("max_scale", LEGACY_MAX_SCALE)


def plane_cap(shape, post):
    """Largest upsampling of a plane of ``shape``: the config's ``max_scale``
    (:func:`max_scale`), lowered to a quarter step that keeps the plane within
    :data:`MAX_UPSAMPLED_PIXELS` (at least 1).

    Examples
    --------
    >>> post = {"max_scale": 3.0}
    >>> plane_cap((1024, 1024), post), plane_cap((4096, 4096), post), plane_cap((8192, 8192), post)
    (3.0, 2.0, 1.0)
    """
    fit = math.floor(4 * math.sqrt(MAX_UPSAMPLED_PIXELS / math.prod(shape))) / 4
    return max(1.0, min(max_scale(post), fit))


def plane_upsampling(found, shape, post):
    """Upsampling of a plane of ``shape`` whose nuclei measure ``found`` pixels, for a model
    config's ``postprocess`` section: :func:`upsample_factor` towards its ``diameter``, within
    :func:`plane_cap` (what ``segment(diameter="auto")`` and training both apply).

    Examples
    --------
    >>> post = {"diameter": 19.3, "max_scale": 3.0}
    >>> plane_upsampling(5.0, (256, 256), post), plane_upsampling(5.0, (4096, 4096), post)
    (3.0, 2.0)
    """
    return upsample_factor(found, post.get("diameter"), plane_cap(shape, post))


def size_rule(post):
    """``native_max`` and ``down_target`` of a config's ``postprocess`` section (keyword
    arguments of :func:`downsample_factor`; :data:`NATIVE_MAX` and :data:`DOWN_TARGET` when
    absent), so that a model can carry its own size rule."""
    return {
        "native_max": post.get("native_max", NATIVE_MAX),
        "down_target": post.get("down_target", DOWN_TARGET),
    }


def downsample_factor(
    estimate,
    reference,
    *,
    native_max=NATIVE_MAX,
    down_target=DOWN_TARGET,
    scales=DOWN_SCALES,
):
    """Scale of a plane whose nuclei were estimated at ``estimate`` pixels: 1.0 up to
    ``native_max`` times ``reference``; 0.125 (when in ``scales``) above :data:`COARSE_FROM`
    times it; else 0.5 or 0.25, whichever brings them closest to ``down_target`` times
    ``reference`` (in ratio). ``None`` gives 1.0.

    Examples
    --------
    >>> downsample_factor(40.0, 19.3), downsample_factor(70.0, 19.3)
    (1.0, 0.5)
    >>> downsample_factor(120.0, 19.3), downsample_factor(250.0, 19.3)
    (0.25, 0.125)
    """
    if not estimate or reference is None or estimate <= native_max * reference:
        return 1.0
    if LOOK_SCALE in scales and estimate > COARSE_FROM * reference:
        return LOOK_SCALE
    target = down_target * reference
    return min(
        (s for s in scales if s != LOOK_SCALE),
        key=lambda s: abs(math.log(estimate * s / target)),
    )


def look_limit(found, reference, native_max=NATIVE_MAX):
    """Foreground diameter above which a probe that estimated ``found`` pixels gets a look:
    :data:`FRAGMENTS_LARGE` times ``found`` over ``native_max`` times ``reference``,
    :data:`FRAGMENTS` times it below, 0 when nothing was found; ``None`` (never) for a
    model without a reference diameter."""
    if reference is None:
        return None
    if not found:
        return 0.0
    return (FRAGMENTS_LARGE if found > native_max * reference else FRAGMENTS) * found


def needs_look(found, foreground, reference, native_max=NATIVE_MAX):
    """Whether a probe that estimated ``found`` pixels needs a look at 0.125x.

    Nuclei over ~2.5x the model's diameter at 0.25x (~190 px in the plane) come out of the
    probe as pieces of about the model's size, which can pass for nuclei of any size; the
    probe's foreground still shows them whole: a ``foreground`` (the inscribed nucleus
    diameter of the probe's foreground, in plane pixels) over :func:`look_limit` says the
    probe cut it up.

    Examples
    --------
    >>> needs_look(14.0, 200.0, 19.3), needs_look(14.0, 20.0, 19.3)
    (True, False)
    >>> needs_look(60.0, 90.0, 19.3), needs_look(60.0, 70.0, 19.3)
    (True, False)
    """
    limit = look_limit(found, reference, native_max)
    return limit is not None and bool(foreground) and foreground > limit


def checked_estimate(found, look, reference):
    """The probe's estimate ``found``, or the look's ``look`` where the look saw nuclei the
    probe cut up: at least :data:`LOOK_GAIN` times larger, and nuclei of at least
    :data:`LOOK_MIN` times ``reference`` at 0.125x (``None``: nothing seen).

    Examples
    --------
    >>> checked_estimate(14.0, 200.0, 19.3), checked_estimate(60.0, 70.0, 19.3)
    (200.0, 60.0)
    >>> checked_estimate(10.0, 70.0, 19.3)  # 9 px at 0.125x: specks, not nuclei
    10.0
    """
    if look is None or reference is None or look * LOOK_SCALE < LOOK_MIN * reference:
        return found
    return look if not found or look > LOOK_GAIN * found else found


def plausible(estimate, shape):
    """``estimate`` (pixels), or ``None`` when it exceeds :data:`PLANE_MAX` times the shorter
    side of a plane of ``shape``.

    Examples
    --------
    >>> plausible(100.0, (256, 300)), plausible(130.0, (256, 300))
    (100.0, None)
    """
    return estimate if estimate is None or estimate <= PLANE_MAX * min(shape) else None


def probe_scale(found, reference, max_scale=MAX_SCALE, scales=DOWN_SCALES, **rule):
    """Scale of a plane chosen by its estimate alone, or ``None``: the full-size pass decides.

    ``found``: the estimate (pixels of the plane; ``None`` when no nucleus was seen). Large
    nuclei are downsampled (:func:`downsample_factor`, ``scales`` and ``rule``: its
    keywords), small ones upsampled (:func:`upsample_factor` of ``found`` times
    :data:`PROBE_SMALL`); ``None`` for the others: the full-size pass is their result unless
    the nuclei measured there call for upsampling.

    Examples
    --------
    >>> probe_scale(120.0, 19.3), probe_scale(12.0, 19.3), probe_scale(30.0, 19.3)
    (0.25, 1.75, None)
    """
    scale = downsample_factor(found, reference, scales=scales, **rule)
    if scale == 1.0 and found:
        scale = upsample_factor(PROBE_SMALL * found, reference, max_scale)
    return None if scale == 1.0 else scale


def mask_diameter(unit):
    """Nucleus diameter (pixels) of a plane too small to probe, without the network: the
    area-weighted median of its Otsu mask's objects (:func:`napari_binseg.size.
    estimate_diameter`); ``None`` when the mask is empty or covers most of the plane.

    Examples
    --------
    >>> import numpy as np
    >>> plane = np.zeros((64, 64), np.float32); plane[10:16, 10:16] = plane[30:36, 40:46] = 1
    >>> 5 <= mask_diameter(plane) <= 8
    True
    """
    from ..size import estimate_diameter
    from ..thresholding import threshold

    if not unit.size or unit.min() == unit.max():  # a constant plane: nothing to measure
        return None
    # The mask of the image the threshold was computed on (smoothed where noisy).
    mask = threshold(unit, background=None).view(bool)
    if not mask.any() or mask.mean() > 0.5:
        return None
    return estimate_diameter(mask) or None


def probe_shape_ok(shape, divisor, scale=PROBE_SCALE):
    """Whether a plane is large enough for a meaningful probe (or look, at ``scale``): both
    sides at least 2 divisors at that scale."""
    return all(round(s * scale) >= 2 * divisor for s in shape)


def down_scales(shape, divisor):
    """The downsampling scales a plane of ``shape`` can be segmented at: :data:`DOWN_SCALES`,
    without 0.125x where the plane is too small for the look (:func:`probe_shape_ok`)."""
    if probe_shape_ok(shape, divisor, LOOK_SCALE):
        return DOWN_SCALES
    return tuple(s for s in DOWN_SCALES if s != LOOK_SCALE)


def rescale_factor(diameter, lm, labels=None):
    """Resize factor of a plane for :func:`segment`'s ``diameter`` option (1.0: no resize).

    ``diameter=None``: 1.0. A number: the model's reference diameter over it, within 1/16-4
    (a model without one raises ValueError). ``"auto"``: from the median nucleus of ``labels`` (the
    full-size pass, step 6 of the module's rule), only upwards, when nuclei are at least 25%
    smaller than the model's reference; the factor is rounded to a quarter and capped at the
    model's ``max_scale`` (the probe's steps are :func:`probe_scale`).
    """
    if diameter is None or lm.spatial_dims != 2:
        return 1.0
    post = lm.config["postprocess"]
    reference = post.get("diameter")
    if diameter == "auto":
        found = median_diameter(labels, SPECK) if labels is not None else None
        return upsample_factor(found, reference, max_scale(post))
    if reference is None:
        raise ValueError(
            f"model {lm.name!r} has no reference nucleus diameter (postprocess.diameter in "
            "its config): use diameter=None or 'auto'"
        )
    return float(np.clip(reference / diameter, 1 / 16, LARGEST_RESIZE))


def check_diameter(diameter, lm):
    """ValueError unless ``diameter`` is ``"auto"``, ``None`` or a positive number (2D models)."""
    if diameter is None or diameter == "auto":
        return
    if (
        isinstance(diameter, bool)
        or not isinstance(diameter, (int, float, np.number))
        or not (0 < diameter < float("inf"))
    ):
        raise ValueError(
            f"diameter must be 'auto', None or a positive number of pixels, got {diameter!r}"
        )
    if lm.spatial_dims != 2:
        raise ValueError(f"diameter applies to 2D models; {lm.name!r} is {lm.spatial_dims}D")
    rescale_factor(diameter, lm)


def scaled_shape(shape, scale):
    """``shape`` times ``scale``, rounded, at least 1 per axis."""
    return tuple(shape) if scale == 1.0 else tuple(max(1, round(s * scale)) for s in shape)


def resize(array, shape):
    """(C, *S) or (*S) float32 array resized (bilinear, antialiased when shrinking)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    lead = x.ndim - len(shape)
    for _ in range(2 - lead):
        x = x[None]
    shrink = any(t < s for t, s in zip(shape, x.shape[2:], strict=True))
    y = F.interpolate(x, size=tuple(shape), mode="bilinear", antialias=shrink)
    return y.reshape(array.shape[:lead] + tuple(shape)).numpy()


def labels_resized(labels, shape):
    """Nearest-neighbour resize of a label plane or volume (pixel centres), renumbered 1..n."""
    index = [
        np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp), n_in - 1)
        for n_out, n_in in zip(shape, labels.shape, strict=True)
    ]
    return remove_small(labels[np.ix_(*index)], 1)
