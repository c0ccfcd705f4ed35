"""What each axis of an image is: time, z or the plane (``"TZYX"`` order).

A stack is either a z-stack (its nuclei are 3D objects), a time series (objects per frame), or
both. Core functions take ``axes=`` and ``spacing=`` and use the helpers here, so every stage
reads a stack the same way. An unlabeled 3D array is a z-stack; pass ``axes="TYX"`` for a time
series of 2D frames.
"""

from collections.abc import Iterator

import numpy as np

#: Allowed axes strings, one per number of dimensions and meaning.
AXES = ("YX", "ZYX", "TYX", "TZYX")
_DEFAULT = {2: "YX", 3: "ZYX", 4: "TZYX"}


def resolve_axes(axes, ndim):
    """Return the axes string of an ``ndim``-dimensional image.

    Parameters
    ----------
    axes : str or None
        ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"`` (case-insensitive). ``None`` gives the
        default: 2D ``"YX"``, 3D ``"ZYX"`` (a z-stack), 4D ``"TZYX"``.
    ndim : int
        Number of dimensions of the image.

    Returns
    -------
    str
        The upper-case axes string, ``len(axes) == ndim``.

    Raises
    ------
    ValueError
        An unknown axes string or one whose length is not ``ndim``.

    Examples
    --------
    >>> resolve_axes(None, 3), resolve_axes("tyx", 3)
    ('ZYX', 'TYX')
    """
    if axes is None:
        if ndim not in _DEFAULT:
            raise ValueError(f"images must have 2 to 4 dimensions, got {ndim}")
        return _DEFAULT[ndim]
    if not isinstance(axes, str) or axes.upper() not in AXES:
        raise ValueError(f"axes must be one of {AXES}, got {axes!r}")
    axes = axes.upper()
    if len(axes) != ndim:
        raise ValueError(f"axes {axes!r} names {len(axes)} dimensions, the image has {ndim}")
    return axes


def spatial_axes(axes):
    """The spatial part of ``axes``: ``"ZYX"`` or ``"YX"``."""
    return axes.replace("T", "")


def resolve_spacing(spacing, axes):
    """Pixel spacing per spatial axis of ``axes`` (1.0 each by default).

    Parameters
    ----------
    spacing : sequence of float or None
        One positive value per spatial axis, or one per axis of ``axes`` (the time step, if
        any, is dropped).
    axes : str
        A resolved axes string.

    Returns
    -------
    tuple of float

    Raises
    ------
    ValueError
        A wrong number of values, or a value that is not finite and positive.

    Examples
    --------
    >>> resolve_spacing((2, 0.5, 0.5), "ZYX"), resolve_spacing(None, "TYX")
    ((2.0, 0.5, 0.5), (1.0, 1.0))
    """
    spatial = spatial_axes(axes)
    if spacing is None:
        return (1.0,) * len(spatial)
    values = tuple(float(s) for s in np.atleast_1d(spacing))
    if len(values) == len(axes) != len(spatial):
        values = tuple(v for a, v in zip(axes, values, strict=True) if a != "T")
    if len(values) != len(spatial):
        raise ValueError(
            f"spacing needs one value per spatial axis ({spatial}), got {tuple(spacing)}"
        )
    if not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing values must be finite and positive, got {tuple(spacing)}")
    return values


def iter_frames(image, axes) -> Iterator[tuple[tuple[int, ...], object]]:
    """Yield ``(index, frame)`` per time point: the spatial block (2D or 3D) of each frame.

    ``index`` is ``(t,)`` for a time series and ``()`` for an image without time axis, so
    ``image[index]`` is the frame.
    """
    if axes.startswith("T"):
        for t in range(image.shape[0]):
            yield (t,), image[t]
    else:
        yield (), image
