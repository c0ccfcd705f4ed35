"""Synthetic fluorescence nuclei with exact instance labels, for samples, tests and benchmarks."""

import numpy as np


def synthetic_nuclei(
    shape=(32, 256, 256),
    n=None,
    *,
    radius=9.0,
    spacing=None,
    min_distance=1.6,
    blur=1.0,
    noise=0.05,
    background=0.1,
    dtype=np.uint16,
    seed=0,
):
    """Ellipsoidal nuclei with blur and noise, and their ground-truth instance labels.

    Nuclei are ellipsoids with random radii (+-25 % around ``radius`` per axis) and random
    brightness, placed at random with a minimum centre distance of ``min_distance`` radii,
    so some touch (a voxel claimed by two nuclei goes to the one whose ellipsoid it lies deeper
    in). The image is the nuclei's brightness (with a faint inner texture) on a constant
    background, blurred with a Gaussian and corrupted by Poisson-like noise.

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)`` or ``(Z, Y, X)``.
    n : int, optional
        Number of nuclei to place (fewer when the image is full). Default: about one per
        ``(4 * radius) ** ndim`` physical pixels.
    radius : float, optional
        Mean nucleus radius in physical units (units of the finest pixel spacing).
    spacing : tuple of float, optional
        Pixel spacing per axis, e.g. ``(2.0, 1.0, 1.0)`` for a z step twice the lateral pixel
        size; nuclei are round in physical space, so they span fewer planes in z. Default:
        ``(2, 1, 1)`` in 3D and ``(1, 1)`` in 2D.
    min_distance : float, optional
        Minimum centre distance in units of ``radius``; below 2 nuclei may touch.
    blur : float, optional
        Gaussian blur sigma in physical units (0 for none).
    noise : float, optional
        Noise level relative to the brightest nucleus.
    background : float, optional
        Background level relative to the brightest nucleus.
    dtype : dtype, optional
        ``uint8``, ``uint16`` (default) or ``float32`` (values in about [0, 1]).
    seed : int, optional
        Random seed: the same seed gives the same image.

    Returns
    -------
    image : ndarray of ``dtype``, shape ``shape``
    labels : ndarray of uint16, shape ``shape``
        Instance labels 1..number placed, 0 = background.

    References
    ----------
    .. [1] Lehmussola et al., "Computational framework for simulating fluorescence microscope
       images with cell populations", IEEE Trans. Med. Imaging 26, 1010-1016 (2007).

    Examples
    --------
    >>> image, labels = synthetic_nuclei((64, 64), n=5, radius=6, seed=1)
    >>> image.shape, image.dtype.name, int(labels.max())
    ((64, 64), 'uint16', 5)
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    ndim = len(shape)
    if ndim not in (2, 3) or min(shape) < 1:
        raise ValueError(f"shape must be 2D or 3D with positive sizes, got {shape}")
    if spacing is None:
        spacing = (2.0, 1.0, 1.0) if ndim == 3 else (1.0, 1.0)
    spacing = np.asarray(spacing, dtype=np.float64)
    if spacing.shape != (ndim,) or np.any(spacing <= 0):
        raise ValueError(f"spacing must hold {ndim} positive values, got {spacing.tolist()}")
    if radius <= 0:
        raise ValueError(f"radius must be positive, got {radius}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)):
        raise ValueError(f"dtype must be uint8, uint16 or float32, got {dtype}")
    extent = np.asarray(shape) * spacing
    if n is None:
        n = max(1, int(np.prod(extent) / (4 * radius) ** ndim))

    rng = np.random.default_rng(seed)
    centres = []
    for _ in range(50 * n):
        if len(centres) == n:
            break
        c = rng.uniform(radius * 0.5, np.maximum(extent - radius * 0.5, radius * 0.5 + 1e-9))
        if all(np.linalg.norm(c - o) >= min_distance * radius for o in centres):
            centres.append(c)

    labels = np.zeros(shape, np.uint16)
    depth = np.full(shape, np.inf, np.float32)  # normalized ellipsoid distance of the owner
    brightness = np.zeros(len(centres) + 1, np.float32)
    texture = np.zeros(shape, np.float32)
    for i, c in enumerate(centres, start=1):
        radii = radius * rng.uniform(0.75, 1.25, size=ndim)
        lo = np.maximum(np.floor((c - radii) / spacing).astype(int), 0)
        hi = np.minimum(np.ceil((c + radii) / spacing).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(a, b) for a, b in zip(lo, hi))
        grids = np.ogrid[box]
        d = sum(((g * s - cc) / r) ** 2 for g, s, cc, r in zip(grids, spacing, c, radii))
        d = d.astype(np.float32)
        mine = (d <= 1) & (d < depth[box])
        labels[box][mine] = i
        depth[box][mine] = d[mine]
        # Dimmer towards the rim, as a blurred, stained nucleus looks.
        texture[box][mine] = 1 - 0.3 * d[mine]
        brightness[i] = rng.uniform(0.5, 1.0)

    image = brightness[labels] * texture
    image[labels == 0] = 0
    import fastremap

    # Consecutive labels even if a nucleus was skipped or fully claimed by its neighbours.
    labels, _ = fastremap.renumber(labels, preserve_zero=True, in_place=True)
    labels = labels.astype(np.uint16, copy=False)
    image += background
    if blur > 0:
        image = ndimage.gaussian_filter(image, sigma=blur / spacing)
    # Shot noise grows with the signal; a floor keeps the background noisy too.
    image += (
        rng.normal(0, 1, size=shape).astype(np.float32)
        * noise
        * np.sqrt(np.maximum(image, background))
    )
    np.clip(image, 0, None, out=image)
    if dtype == np.float32:
        return image.astype(np.float32), labels
    top = np.iinfo(dtype).max
    scaled = image / max(float(image.max()), 1e-12) * (0.9 * top)
    return np.round(scaled).astype(dtype), labels
