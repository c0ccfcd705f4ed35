"""Input checks shared by the core modules.

Every public function validates its arrays here first, so a user gets one precise
``ValueError`` naming the argument instead of a traceback from deep inside numpy or torch.
Checks never copy the data (except big-endian data, converted to native byte order) and keep
dask arrays lazy (only metadata is inspected).
"""

import numpy as np


def is_dask(array):
    """Return True for a dask array (without importing dask)."""
    return type(array).__module__.startswith("dask.")


def as_array(data, *, name):
    """Return ``data`` as a numpy or dask array without copying."""
    if is_dask(data) or isinstance(data, np.ndarray):
        return data
    if hasattr(data, "__array__") and hasattr(data, "shape") and hasattr(data, "dtype"):
        # zarr, h5py and other lazy array-likes: keep them lazy through dask.
        import dask.array as da

        return da.from_array(data, chunks="auto")
    try:
        return np.asarray(data)
    except Exception as exc:  # ragged lists, objects, ...
        raise TypeError(f"{name} must be an array, got {type(data).__name__}") from exc


def native(array):
    """``array`` in the machine's byte order: big-endian data (from a file or another machine)
    is converted (a copy), everything else returned as it is. Compiled kernels (numba, cc3d)
    read raw bytes and would get wrong values, or fail to compile, on swapped data."""
    if array.dtype.isnative:
        return array
    return array.astype(array.dtype.newbyteorder("="))


def check_image(image, *, name="image", min_ndim=2, max_ndim=4):
    """Validate an intensity image: numeric, non-empty, single channel.

    Parameters
    ----------
    image : array-like
        Numpy, dask or any array-like with ``shape`` and ``dtype``.
    name : str
        Argument name used in error messages.
    min_ndim, max_ndim : int
        Allowed number of dimensions.

    Returns
    -------
    image : ndarray or dask array
        The input, not copied (unless in a non-native byte order: converted).

    Raises
    ------
    ValueError
        Empty arrays, wrong dimensionality, non-numeric dtypes.
    """
    image = as_array(image, name=name)
    if image.size == 0:
        raise ValueError(f"{name} is empty (shape {image.shape})")
    if image.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array, got dtype {image.dtype}")
    if not min_ndim <= image.ndim <= max_ndim:
        raise ValueError(
            f"{name} must have {min_ndim} to {max_ndim} dimensions, got shape {image.shape}"
        )
    return native(image)


def check_rgb(image, *, name="image", rgb=False):
    """Reject colour images: they need a chosen channel first.

    ``rgb`` is what the caller knows (napari's ``layer.rgb``); without it, a trailing axis of
    length 3 or 4 on a 3D array is treated as colour, as napari guesses.
    """
    if rgb or (image.ndim == 3 and image.shape[-1] in (3, 4)):
        raise ValueError(
            f"{name} looks like an RGB(A) image (shape {image.shape}); choose one channel, "
            "for example image[..., 0], or split the channels in napari first"
        )


def check_labels(labels, *, name="labels"):
    """Validate a label image or binary mask: integer or boolean, non-empty.

    Raises
    ------
    ValueError
        Float data (labels must be integers), empty arrays, fewer than 2 dimensions.
    """
    labels = as_array(labels, name=name)
    if labels.size == 0:
        raise ValueError(f"{name} is empty (shape {labels.shape})")
    if labels.dtype.kind == "f":
        raise ValueError(
            f"{name} holds floating point data ({labels.dtype}); expected a label image or "
            "binary mask of integers or booleans. Threshold it first."
        )
    if labels.dtype.kind not in "biu":
        raise ValueError(f"{name} must be an integer or boolean array, got dtype {labels.dtype}")
    if labels.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions, got shape {labels.shape}")
    return native(labels)


def is_mask(labels, high=None):
    """Whether a label image is a binary mask: booleans, or integers whose non-zero pixels all
    hold one value (0/1, or 0/255 as Fiji and image editors save masks).

    ``high`` is ``labels.max()`` when the caller has it already. A dask array is computed.
    """
    if labels.dtype == bool:
        return True
    if high is None:
        high = labels.max()
        if is_dask(labels):
            high = high.compute()
    if int(high) <= 1:
        return True
    n_foreground, n_high = (labels != 0).sum(), (labels == high).sum()
    if is_dask(labels):
        import dask

        n_foreground, n_high = dask.compute(n_foreground, n_high)
    return int(n_foreground) == int(n_high)
