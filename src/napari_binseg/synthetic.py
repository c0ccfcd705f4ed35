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
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        grids = np.ogrid[box]
        d = sum(
            ((g * s - cc) / r) ** 2 for g, s, cc, r in zip(grids, spacing, c, radii, strict=True)
        )
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


def _random_rotation(rng):
    """A uniformly random 3x3 rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _place(rng, extent, radii, min_distance, tries=30):
    """Centres (physical units) by rejection, nucleus by nucleus: each at least
    ``min_distance * (r_i + r_j)`` from the centres already placed (``radii``: the nuclei's mean
    radii); a nucleus that finds no room in ``tries`` draws is left out. A grid of cells as
    wide as the largest exclusion distance keeps each check to the 27 cells around a draw.

    Returns the centres and the indices of the nuclei placed.
    """
    n = len(radii)
    cell = max(2.0 * min_distance * float(radii.max()), 1e-9)
    grid = {}
    centres = np.empty((n, 3))
    kept = np.empty(n, np.intp)
    offsets = [(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)]
    k = 0
    for j in range(n):
        for c in rng.uniform(0.0, extent, (tries, 3)):
            key = tuple((c // cell).astype(int))
            near = [
                i
                for o in offsets
                for i in grid.get((key[0] + o[0], key[1] + o[1], key[2] + o[2]), ())
            ]
            if near:
                near = np.asarray(near)
                d2 = ((centres[near] - c) ** 2).sum(axis=1)
                if np.any(d2 < (min_distance * (radii[kept[near]] + radii[j])) ** 2):
                    continue
            centres[k] = c
            kept[k] = j
            grid.setdefault(key, []).append(k)
            k += 1
            break
    return centres[:k], kept[:k]


def _render(shape, spacing, centres, forms, reach):
    """Labels (1..n in the order given) and normalized ellipsoid depth of every voxel.

    A voxel inside several ellipsoids goes to the one it lies deepest in (smallest
    ``x^T A x``), so touching nuclei share a flat-ish contact face instead of overlapping.
    """
    labels = np.zeros(shape, np.uint32)
    depth = np.full(shape, np.inf, np.float32)
    for i, (c, a, r) in enumerate(zip(centres, forms, reach, strict=True), start=1):
        lo = np.maximum(np.floor((c - r) / spacing).astype(int), 0)
        hi = np.minimum(np.ceil((c + r) / spacing).astype(int) + 1, shape)
        if np.any(hi <= lo):
            continue
        box = tuple(slice(p, q) for p, q in zip(lo, hi, strict=True))
        z, y, x = (
            (np.arange(p, q, dtype=np.float32) * s - cc).reshape(sh)
            for p, q, s, cc, sh in zip(
                lo, hi, spacing, c, ((-1, 1, 1), (1, -1, 1), (1, 1, -1)), strict=True
            )
        )
        a = a.astype(np.float32)
        d = (
            a[0, 0] * z * z
            + a[1, 1] * y * y
            + a[2, 2] * x * x
            + 2 * a[0, 1] * z * y
            + 2 * a[0, 2] * z * x
            + 2 * a[1, 2] * y * x
        )
        view = depth[box]
        mine = (d <= 1) & (d < view)
        labels[box][mine] = i
        view[mine] = d[mine]
    return labels, depth


def _keep_largest_parts(labels):
    """Each label reduced to its largest 6-connected part (a nucleus squeezed between two
    neighbours can be cut in two by the deepest-ellipsoid rule); the rest becomes background."""
    import cc3d

    parts = cc3d.connected_components(labels, connectivity=6)
    n_parts = int(parts.max())
    if n_parts == np.count_nonzero(np.bincount(labels.ravel())[1:]):
        return labels
    sizes = np.bincount(parts.ravel(), minlength=n_parts + 1)
    owner = np.zeros(n_parts + 1, labels.dtype)
    owner[parts.ravel()] = labels.ravel()
    order = np.argsort(-sizes[1:], kind="stable") + 1
    _, first = np.unique(owner[order], return_index=True)
    keep = np.zeros(n_parts + 1, bool)
    keep[order[first]] = True
    keep[0] = False
    labels = labels.copy()
    labels[~keep[parts] & (labels > 0)] = 0
    return labels


def synthetic_stack(
    shape=(32, 256, 256),
    *,
    spacing=(2.0, 1.0, 1.0),
    radius=9.0,
    n=None,
    fill=0.3,
    size_spread=0.15,
    elongation=0.25,
    min_distance=0.75,
    psf=(2.5, 1.0),
    texture=0.25,
    background=0.08,
    uneven=0.5,
    attenuation=0.3,
    noise=0.04,
    drift=1.0,
    dtype=np.uint16,
    seed=0,
):
    """Anisotropic fluorescence z-stack of dense, touching nuclei with exact instance labels.

    A confocal or widefield z-stack as a microscope records it: ellipsoidal nuclei of varied
    size, shape and orientation packed densely in physical space (many touch, sharing a contact
    face), sampled on a grid whose z step is coarser than the lateral pixel, seen through a
    point-spread function longer along the optical axis than across it, dimmer with depth,
    on an uneven background, with shot and read noise.

    Parameters
    ----------
    shape : tuple of int
        ``(Z, Y, X)``, or ``(T, Z, Y, X)`` for a time series of stacks in which the same nuclei
        drift (nucleus ``i`` carries label ``i`` in every frame where it is visible).
    spacing : (3,) tuple of float
        Voxel size ``(dz, dy, dx)`` in physical units (µm, say); microscopes step 2-4x the
        lateral pixel size in z.
    radius : float
        Mean nucleus radius in physical units.
    n : int, optional
        Number of nuclei to place (fewer when the volume is full). Default: as many as fill
        ``fill`` of the volume.
    fill : float
        Fraction of the volume the nuclei would fill without overlap (default 0.3: dense
        tissue; with ``min_distance`` < 1 most nuclei touch a neighbour).
    size_spread : float
        Relative standard deviation of the nucleus size (log-normal).
    elongation : float
        Each semi-axis is ``radius * U(1 - elongation, 1 + elongation)`` (times the size
        factor), and the ellipsoid is turned by a uniformly random rotation.
    min_distance : float
        Minimum centre distance as a fraction of the sum of the two nuclei's mean radii;
        below 1 nuclei may touch.
    psf : (axial, lateral) tuple of float
        Gaussian point-spread function sigmas in physical units (axial > lateral, as with any
        objective); ``(0, 0)`` for none.
    texture : float
        Amplitude of the chromatin texture inside nuclei (0 for flat nuclei).
    background : float
        Background level relative to the brightest nucleus.
    uneven : float
        Relative amplitude of a smooth background gradient across the field (0 for flat).
    attenuation : float
        Fraction of the signal lost from the first plane to the last (light scattered with
        depth).
    noise : float
        Shot-noise level relative to the brightest nucleus (read noise is a quarter of it).
    drift : float
        Standard deviation of the nuclei's displacement between frames (physical units), for
        ``(T, Z, Y, X)`` shapes.
    dtype : dtype
        ``uint8``, ``uint16`` (default) or ``float32`` (values in about [0, 1]).
    seed : int
        Random seed: the same seed gives the same stack.

    Returns
    -------
    image : ndarray of ``dtype``, shape ``shape``
    labels : ndarray of uint16 (uint32 above 65535 nuclei), shape ``shape``
        Exact instance labels, 0 = background. Every nucleus is one 6-connected region;
        labels are consecutive ``1..n`` (per frame they are the visible subset of ``1..n``).

    References
    ----------
    .. [1] Svoboda, Kozubek and Stejskal, "Generation of digital phantoms of cell nuclei and
       simulation of image formation in 3D image cytometry", Cytometry A 75, 494-509 (2009).
    .. [2] Lehmussola et al., "Computational framework for simulating fluorescence microscope
       images with cell populations", IEEE Trans. Med. Imaging 26, 1010-1016 (2007).

    Examples
    --------
    >>> image, labels = synthetic_stack((16, 64, 64), spacing=(3.0, 1.0, 1.0), radius=6, seed=1)
    >>> image.shape, image.dtype.name, bool(labels.max() > 10)
    ((16, 64, 64), 'uint16', True)
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in shape)
    if len(shape) not in (3, 4) or min(shape) < 1:
        raise ValueError(
            f"shape must be (Z, Y, X) or (T, Z, Y, X) with positive sizes, got {shape}"
        )
    frames, vol = (shape[0], shape[1:]) if len(shape) == 4 else (None, shape)
    spacing = np.asarray(spacing, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(spacing > 0):
        raise ValueError(
            f"spacing must hold 3 positive values (dz, dy, dx), got {spacing.tolist()}"
        )
    if not radius > 0:
        raise ValueError(f"radius must be positive, got {radius}")
    if not 0 < fill <= 1:
        raise ValueError(f"fill must be in (0, 1], got {fill}")
    if not 0 <= elongation < 1:
        raise ValueError(f"elongation must be in [0, 1), got {elongation}")
    psf = tuple(float(p) for p in psf)
    if len(psf) != 2 or min(psf) < 0:
        raise ValueError(f"psf must be (axial, lateral) sigmas >= 0, got {psf}")
    for name, value in (
        ("size_spread", size_spread),
        ("min_distance", min_distance),
        ("texture", texture),
        ("background", background),
        ("uneven", uneven),
        ("noise", noise),
        ("drift", drift),
    ):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    if not 0 <= attenuation < 1:
        raise ValueError(f"attenuation must be in [0, 1), got {attenuation}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)):
        raise ValueError(f"dtype must be uint8, uint16 or float32, got {dtype}")

    rng = np.random.default_rng(seed)
    extent = np.asarray(vol) * spacing
    if n is None:
        n = max(1, int(round(fill * np.prod(extent) / (4 / 3 * np.pi * radius**3))))
    size = radius * np.exp(rng.normal(0.0, size_spread, n))
    axes = size[:, None] * rng.uniform(1 - elongation, 1 + elongation, (n, 3))
    # Centres may lie just outside the volume: nuclei cut by its faces, as in a real stack.
    margin = 0.3 * radius
    centres, kept = _place(rng, extent + 2 * margin, axes.mean(axis=1), min_distance)
    centres -= margin
    axes = axes[kept]
    forms, reach = [], []
    for ax in axes:
        rot = _random_rotation(rng)
        forms.append(rot @ np.diag(1.0 / ax**2) @ rot.T)
        reach.append(np.full(3, ax.max()))
    brightness = rng.uniform(0.5, 1.0, len(kept) + 1).astype(np.float32)
    brightness[0] = 0
    # Background: a smooth tilt in y and x (uneven illumination) around ``background``.
    tilt = rng.uniform(-1, 1, 2)
    yy = np.linspace(-0.5, 0.5, vol[1], dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, vol[2], dtype=np.float32)[None, :]
    back = background * (1 + uneven * (tilt[0] * yy + tilt[1] * xx)).astype(np.float32)
    depth_gain = (1 - attenuation * np.linspace(0, 1, vol[0], dtype=np.float32))[:, None, None]
    sigma = (psf[0] / spacing[0], psf[1] / spacing[1], psf[1] / spacing[2])
    label_dtype = np.uint16 if len(kept) < 65536 else np.uint32

    images, label_frames = [], []
    for t in range(frames or 1):
        if t:
            centres = centres + rng.normal(0.0, drift, centres.shape)
        labels, depth = _render(vol, spacing, centres, forms, reach)
        labels = _keep_largest_parts(labels)
        inside = labels > 0
        obj = brightness[labels]
        # Dimmer towards the rim; chromatin as smoothed noise.
        obj *= 1 - 0.3 * np.where(inside, depth, 0)
        if texture > 0:
            grain = rng.standard_normal(vol, dtype=np.float32)
            grain = ndimage.gaussian_filter(grain, sigma=1.0 / spacing, truncate=3.0)
            grain *= texture / max(float(grain.std()), 1e-6)
            obj *= 1 + np.clip(grain, -0.9, 0.9)
        obj[~inside] = 0
        obj *= depth_gain
        if max(sigma) > 0:
            obj = ndimage.gaussian_filter(obj, sigma=sigma, truncate=3.0)
        obj += back
        obj += rng.standard_normal(vol, dtype=np.float32) * np.float32(noise) * np.sqrt(
            np.maximum(obj, background)
        ) + rng.standard_normal(vol, dtype=np.float32) * np.float32(noise / 4)
        np.clip(obj, 0, None, out=obj)
        images.append(obj)
        label_frames.append(labels.astype(label_dtype, copy=False))

    if frames is None:
        image, labels = images[0], label_frames[0]
        import fastremap

        labels, _ = fastremap.renumber(labels, preserve_zero=True, in_place=True)
        labels = labels.astype(label_dtype, copy=False)
    else:
        image, labels = np.stack(images), np.stack(label_frames)
    if dtype == np.float32:
        return image.astype(np.float32, copy=False), labels
    top = np.iinfo(dtype).max
    image *= np.float32(0.9 * top / max(float(image.max()), 1e-12))
    return np.round(image).astype(dtype), labels
