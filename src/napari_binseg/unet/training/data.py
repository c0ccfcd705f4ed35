"""Training data: annotated planes of (image, labels) pairs, the scale segment() runs them
at, targets, augmented crops.

Targets per plane: channel 0 the foreground (``labels > 0``), channel 1 the nucleus centres
(pixels whose distance to the nucleus border, inter-nucleus borders included, is more than half
of that nucleus' largest distance). Touching nuclei have separate centres, so instances are
centres grown into the foreground
(:func:`napari_binseg.unet._postprocess.probabilities_to_labels`).
"""

import math
from pathlib import Path

import numpy as np

# Augmentations of :class:`Sampler`, all on by default; named once, in the options.
from ...options import AUGMENTATIONS

#: Smallest plane side the training accepts (pixels).
MIN_SIDE = 16

#: Reference nucleus diameter (pixels) of a model trained from scratch: the bundled model's,
#: which the size rule's constants were chosen for and the presets' receptive fields (31 px
#: for mobile and compact, 63 for default) fit. Nuclei of 15-48 pixels train at full size,
#: others at the scale segment() will run them at. Trained from scratch on 4 s-bsst265 63x
#: images (even rows, nuclei ~100 px; default preset, 1000 steps of 4 crops, seeds 0 and 1):
#: pooled F1 on 3 other even-row images 0.767 / 0.894, against 0.682 / 0.406 with the
#: training median (103 px) as the reference (full-size training, whose 0.25x probe then
#: misjudged one image as 10-px nuclei).
SCRATCH_DIAMETER = 19.3


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _check_pair(image, lab, where):
    """Raise ValueError naming ``where`` when an (image, labels) pair cannot be trained on."""
    if image.ndim == lab.ndim + 1 and image.shape[-1] in (3, 4):
        raise ValueError(
            f"{where}: the image is RGB(A) (shape {image.shape}); train on one channel"
        )
    if image.shape != lab.shape:
        raise ValueError(f"{where}: image shape {image.shape} and labels shape {lab.shape} differ")
    if image.ndim < 2:
        raise ValueError(f"{where}: images must be 2D or stacks of 2D planes")
    if image.dtype.kind not in "biuf":
        raise ValueError(f"{where}: images of dtype {image.dtype} are not numeric intensities")
    if min(image.shape[-2:]) < MIN_SIDE:
        h, w = image.shape[-2:]
        raise ValueError(
            f"{where}: the image is {h} x {w} pixels; training needs planes of at least "
            f"{MIN_SIDE} x {MIN_SIDE}"
        )
    if lab.dtype.kind == "f":
        raise ValueError(
            f"{where}: labels are {lab.dtype} (floating point); instance labels must be "
            "integers (use a Labels layer, one value per nucleus)"
        )
    if lab.dtype.kind not in "biu":
        raise ValueError(f"{where}: labels of dtype {lab.dtype} are not integer labels")


def annotated_planes(images, labels, *, name="pair", sources=None):
    """The annotated 2D planes of (image, labels) pairs, checked.

    Parameters
    ----------
    images, labels : array or list of arrays
        Images (2D, or stacks/time series whose last two axes are Y, X) and integer instance
        labels of the same shape. In a stack, planes without any label are not annotated and
        are skipped.
    name : str
        Used in error messages (``"pair 2: ..."``).
    sources : list of str, optional
        One description per pair (e.g. file names), used in messages instead of ``name i``.

    Returns
    -------
    planes : list of (image, labels, source)
        2D arrays and a ``"pair i[, plane j]"`` description.

    Raises
    ------
    ValueError
        Different numbers of images and labels, RGB images, mismatched shapes, planes under
        16 x 16 pixels, float labels, NaN or infinite pixels in an annotated plane, or no
        annotated plane.
    """
    images, labels = _as_list(images), _as_list(labels)
    if len(images) != len(labels):
        raise ValueError(f"got {len(images)} images but {len(labels)} label images")
    if not images:
        raise ValueError("no training pairs given")
    planes = []
    for i, (image, lab) in enumerate(zip(images, labels, strict=True)):
        if sources is not None:
            where = sources[i]
        else:
            where = f"{name} {i}" if len(images) > 1 else name
        image, lab = np.asarray(image), np.asarray(lab)
        _check_pair(image, lab, where)
        n_before = len(planes)
        flat_im = image.reshape((-1,) + image.shape[-2:])
        flat_lab = lab.reshape((-1,) + lab.shape[-2:])
        for j in range(flat_lab.shape[0]):
            plane = flat_lab[j]
            if not plane.any():
                continue
            source = where if flat_lab.shape[0] == 1 else f"{where}, plane {j}"
            if flat_im.dtype.kind == "f":
                bad = int(np.count_nonzero(~np.isfinite(flat_im[j])))
                if bad:
                    # One NaN makes the percentiles, the loss and then every weight NaN.
                    raise ValueError(
                        f"{source}: the image holds {bad} NaN or infinite pixel(s); training "
                        "needs finite intensities (replace or crop them first)"
                    )
            if plane.dtype.kind == "b":
                from scipy import ndimage as ndi

                plane = ndi.label(plane)[0]
            elif plane.dtype.kind == "i" and plane.min() < 0:
                raise ValueError(f"{source}: labels must be >= 0, got {plane.min()}")
            elif plane.max() > plane.size:
                # Sparse huge ids (e.g. 10**9) would size per-label arrays by the id.
                ids, inverse = np.unique(plane, return_inverse=True)
                plane = inverse.reshape(plane.shape) + int(ids[0] != 0)
            planes.append((flat_im[j], plane.astype(np.int32), source))
        if len(planes) == n_before:
            raise ValueError(f"{where}: the labels are empty; paint some nuclei first")
    return planes


def _read(path, what):
    from ...io import imread

    try:
        return imread(path)[0]
    except (OSError, ValueError, MemoryError) as exc:
        raise ValueError(f"{what} {Path(path).name}: cannot read it ({exc})") from None


def read_named_pairs(images_dir, labels_dir):
    """(images, labels, names) lists from two folders of TIFFs paired by name.

    Names pair as in ``napari-binseg evaluate``: ``cells.tif`` with ``cells.tif`` or
    ``cells_labels.tif`` (also ``_masks``, ``_mask``, ``_gt``). A file that cannot be read
    (truncated, not a TIFF) raises ValueError naming it.
    """
    from ...io import pair_files

    pairs = pair_files(images_dir, labels_dir, names=("image", "labels"))
    images = [_read(image, "image") for _, image, _ in pairs]
    labels = [_read(lab, "labels") for _, _, lab in pairs]
    return images, labels, [Path(image).name for _, image, _ in pairs]


def read_pairs(images_dir, labels_dir):
    """(images, labels) lists from two folders of TIFFs paired by name (see
    :func:`read_named_pairs`)."""
    images, labels, _ = read_named_pairs(images_dir, labels_dir)
    return images, labels


def split_planes(n, val_fraction, seed):
    """Indices of training and validation planes (a seeded share, at least one of each)."""
    order = np.random.default_rng(seed).permutation(n)
    k = min(n - 1, int(round(val_fraction * n)))
    if val_fraction > 0 and k == 0 and n > 1:
        k = 1
    return sorted(order[k:].tolist()), sorted(order[:k].tolist())


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


def upsample_to(image, labels, post):
    """``image`` and ``labels`` upsampled as ``segment(diameter="auto")`` would the image for
    a model whose config's ``postprocess`` section is ``post``.

    The factor comes from the labels' median nucleus against the model's ``diameter``, within
    its ``max_scale`` and the pixel budget (:func:`napari_binseg.unet.scale.plane_upsampling`);
    unchanged at 1.0.
    """
    from ..scale import labels_resized, median_diameter, plane_upsampling, resize, scaled_shape

    factor = plane_upsampling(median_diameter(labels), image.shape, post)
    if factor == 1.0:
        return image, labels
    shape = scaled_shape(image.shape, factor)
    return resize(image, shape), labels_resized(labels, shape)


def segment_scale(diameter, shape, post, divisor):
    """Scale at which ``segment(diameter="auto")`` runs a plane whose nuclei measure
    ``diameter`` pixels, when its estimate is right (:mod:`napari_binseg.unet.scale`).

    Planes large enough for the probe go down by :func:`~napari_binseg.unet.scale.
    downsample_factor` (0.125x only where the look fits); every plane goes up by
    :func:`~napari_binseg.unet.scale.plane_upsampling`; 1.0 for a model without a reference
    diameter.

    Parameters
    ----------
    diameter : float or None
        Median nucleus diameter of the plane (pixels).
    shape : (M, N) tuple
        The plane's shape.
    post : dict
        The model config's ``postprocess`` section (``diameter``, ``max_scale`` and the size
        rule's ``native_max``, ``down_target``).
    divisor : int
        The network's divisor (what the probe's plane size is checked against).

    Examples
    --------
    >>> post = {"diameter": 19.3}
    >>> segment_scale(100.0, (1024, 1280), post, 16), segment_scale(60.0, (1024, 1280), post, 16)
    (0.25, 0.5)
    >>> segment_scale(10.0, (256, 256), post, 16), segment_scale(100.0, (100, 100), post, 16)
    (2.0, 1.0)
    """
    from ..scale import down_scales, downsample_factor, plane_upsampling, probe_shape_ok, size_rule

    reference = post.get("diameter")
    scale = 1.0
    if probe_shape_ok(shape, divisor):
        scales = down_scales(shape, divisor)
        scale = downsample_factor(diameter, reference, scales=scales, **size_rule(post))
    if scale == 1.0:
        scale = plane_upsampling(diameter, shape, post)
    return scale


def at_segment_scale(image, labels, post, divisor):
    """A normalized plane and its labels resized as ``segment(diameter="auto")`` resizes
    the plane, by the labels' median nucleus (:func:`segment_scale`).

    Returns
    -------
    image : ndarray of float32
    labels : ndarray of int32
        Nearest-neighbour resized, renumbered 1..n (objects lost in a downsampling dropped).
    scale : float
    """
    from ..scale import labels_resized, median_diameter, resize, scaled_shape

    scale = segment_scale(median_diameter(labels), image.shape, post, divisor)
    if scale == 1.0:
        return image, labels, scale
    shape = scaled_shape(image.shape, scale)
    return resize(image, shape), labels_resized(labels, shape).astype(np.int32), scale


class Sampler:
    """Random augmented crops from normalized images and their targets.

    Augmentation in numpy/torch: random scale (0.6-1.6), flips, 90 degree rotations, Gaussian
    blur (out of focus: a third of the crops, sigma 0.5-3.5 px, up to a fifth of the nucleus
    diameter the training sees), contrast, brightness, gamma and Gaussian noise. ``augment``
    names the augmentations to apply (a subset of :data:`AUGMENTATIONS`); ``weights`` are the
    images' relative sampling rates (default: square root of their pixel counts).
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
        from scipy import ndimage as ndi

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
        if "blur" in aug and rng.random() < 1 / 3:
            sigma = float(rng.uniform(0.5, 3.5))
            im_t = torch.from_numpy(ndi.gaussian_filter(im_t.numpy(), (0, sigma, sigma)))
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
        """``n`` augmented crops: images (n, 1, crop, crop) and targets (n, 2, crop, crop)."""
        import torch

        items = [self._one() for _ in range(n)]
        return torch.stack([a for a, _ in items]), torch.stack([b for _, b in items])
