"""Sample data for napari's *File > Open Sample*: real DSB 2018 nuclei and a synthetic 3D stack.

The 2D samples are fluorescence images from the 2018 Data Science Bowl training set
(BBBC038; Caicedo et al., Nature Methods 16, 1247-1253, 2019; CC0), packaged with their
ground-truth instance labels, which open as a second Labels layer named "... ground truth".
"""

from pathlib import Path

DATA = Path(__file__).parent / "data"
SAMPLES = {
    "nuclei_2d": "nuclei_175dbb364bfefc95",
    "nuclei_2d_small": "nuclei_003cee89357d9fe1",
}
CREDIT = (
    "2018 Data Science Bowl training set (BBBC038; Caicedo et al., Nature Methods 16, "
    "1247-1253, 2019), CC0"
)
# The synthetic stack: z step twice the lateral pixel size, as in a typical confocal stack.
SPACING_3D = (2.0, 1.0, 1.0)


def load_sample(key):
    """Image, ground-truth labels and metadata of a sample.

    Parameters
    ----------
    key : {"nuclei_2d", "nuclei_2d_small", "nuclei_3d"}

    Returns
    -------
    image : ndarray
        uint8 (2D samples) or uint16 (3D).
    labels : ndarray of uint16
        Ground-truth instance labels.
    meta : dict
        ``name``, ``scale``, ``units``, ``source``.
    """
    from .io import imread

    if key == "nuclei_3d":
        from .synthetic import synthetic_stack

        image, labels = synthetic_stack((32, 256, 256), spacing=SPACING_3D, seed=0)
        meta = {
            "name": "nuclei_3d",
            "scale": SPACING_3D,
            "units": ("µm",) * 3,
            "source": "synthetic (napari_binseg.synthetic_stack, seed 0)",
        }
        return image, labels, meta
    if key not in SAMPLES:
        choices = sorted([*SAMPLES, "nuclei_3d"])
        raise ValueError(f"unknown sample {key!r}; choose one of {choices}")
    image, image_meta = imread(DATA / f"{SAMPLES[key]}.tif")
    labels, _ = imread(DATA / f"{SAMPLES[key]}_labels.tif")
    meta = {
        "name": key,
        "scale": image_meta["scale"],
        "units": image_meta["units"],
        "source": f"{CREDIT}, image {SAMPLES[key]}",
    }
    return image, labels, meta


def _layers(key):
    from ._reader import prefer_for_tiff

    prefer_for_tiff()  # users of the plugin open TIFFs with its reader in one step
    image, labels, meta = load_sample(key)
    units = tuple(u or "pixel" for u in meta["units"])
    axis_labels = ("z", "y", "x")[-image.ndim :]  # the 3D sample is a z-stack
    common = {
        "scale": meta["scale"],
        "units": units,
        "axis_labels": axis_labels,
        "metadata": {"source": meta["source"]},
    }
    return [
        (image, {"name": key, **common}, "image"),
        (
            labels,
            {"name": f"{key} ground truth", "opacity": 0.5, "visible": False, **common},
            "labels",
        ),
    ]


def nuclei_2d():
    """Fluorescence nuclei, 520x696, 179 annotated nuclei (DSB 2018), with ground truth."""
    return _layers("nuclei_2d")


def nuclei_2d_small():
    """Fluorescence nuclei, 256x256, 36 annotated nuclei (DSB 2018), with ground truth."""
    return _layers("nuclei_2d_small")


def nuclei_3d():
    """Synthetic 32x256x256 nuclei stack (z step 2 um, 1 um pixels), with ground truth."""
    return _layers("nuclei_3d")
