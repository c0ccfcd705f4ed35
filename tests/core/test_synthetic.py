"""synthetic_stack: exact labels of dense anisotropic nuclei stacks, PSF, time series, speed."""

import time

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from napari_binseg.synthetic import synthetic_stack


@pytest.fixture(scope="module")
def stack():
    return synthetic_stack((24, 128, 128), spacing=(2.0, 1.0, 1.0), radius=8, seed=3)


def test_labels_exact_and_consecutive(stack):
    image, labels = stack
    assert image.shape == labels.shape == (24, 128, 128)
    assert image.dtype == np.uint16 and labels.dtype == np.uint16
    n = int(labels.max())
    assert n > 40
    np.testing.assert_array_equal(np.unique(labels), np.arange(n + 1))
    # Every nucleus is one 6-connected region: as many parts as labels.
    assert int(cc3d.connected_components(labels, connectivity=6).max()) == n
    # Nuclei are brighter than the background around them.
    assert image[labels > 0].mean() > 2 * image[labels == 0].mean()


def test_dense_touching(stack):
    _, labels = stack
    n = int(labels.max())
    # Nuclei sharing a face with another nucleus (different labels, 6-adjacent).
    touching = set()
    for axis in range(3):
        a = np.moveaxis(labels, axis, 0)
        pair = (a[1:] != a[:-1]) & (a[1:] > 0) & (a[:-1] > 0)
        touching.update(np.unique(a[1:][pair]).tolist())
        touching.update(np.unique(a[:-1][pair]).tolist())
    assert len(touching) > 0.3 * n
    # So the foreground alone has far fewer connected components than nuclei.
    assert int(cc3d.connected_components(labels > 0, connectivity=6).max()) < 0.8 * n


@pytest.mark.parametrize("dz", [2.0, 4.0])
def test_anisotropic_sampling(dz):
    _, labels = synthetic_stack((16, 96, 96), spacing=(dz, 1.0, 1.0), radius=8, seed=1)
    boxes = [b for b in ndimage.find_objects(labels) if b is not None]
    z = np.median([b[0].stop - b[0].start for b in boxes])
    y = np.median([b[1].stop - b[1].start for b in boxes])
    # Round in physical space: a nucleus spans about 1/dz as many planes as rows.
    assert 0.7 / dz < z / y < 1.4 / dz


def test_single_sphere_volume_and_orientation_free():
    r = 10.0
    _, labels = synthetic_stack(
        (20, 64, 64),
        spacing=(2.0, 1.0, 1.0),
        radius=r,
        n=1,
        size_spread=0,
        elongation=0,
        min_distance=0,
        seed=0,
    )
    assert labels.max() == 1
    volume = np.count_nonzero(labels) * 2.0
    # Exact sphere of radius r (cut by the faces at most a little: centres lie near the volume).
    assert volume <= 4 / 3 * np.pi * r**3 * 1.05


def test_psf_longer_along_z():
    """Blur: light spreads further out of a nucleus along z than along x (isotropic voxels)."""
    kw = {
        "n": 1,
        "size_spread": 0,
        "elongation": 0,
        "texture": 0,
        "noise": 0,
        "uneven": 0,
        "attenuation": 0,
        "background": 0,
        "dtype": np.float32,
    }
    image, labels = synthetic_stack(
        (40, 64, 64), spacing=(1.0, 1.0, 1.0), radius=10, psf=(3.0, 1.0), seed=5, **kw
    )
    inside = labels > 0

    def shell_mean(axis):  # mean intensity within 3 voxels outside the nucleus along ``axis``
        structure = np.zeros((3, 3, 3), bool)
        structure[tuple(slice(None) if i == axis else 1 for i in range(3))] = True
        shell = ndimage.binary_dilation(inside, structure, iterations=3) & ~inside
        return image[shell].mean()

    assert shell_mean(0) > 1.5 * shell_mean(2)


def test_deterministic_and_seeded():
    a = synthetic_stack((8, 48, 48), radius=6, seed=7)
    b = synthetic_stack((8, 48, 48), radius=6, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(synthetic_stack((8, 48, 48), radius=6, seed=8)[1], a[1])


def test_time_series_same_nuclei_drift():
    image, labels = synthetic_stack((3, 12, 64, 64), radius=7, drift=0.5, seed=2)
    assert image.shape == labels.shape == (3, 12, 64, 64)
    first = ndimage.center_of_mass(labels[0] > 0, labels[0], range(1, labels[0].max() + 1))
    for t in (1, 2):
        ids = np.unique(labels[t])[1:]
        assert len(ids) > 10
        # Nucleus i keeps label i and moves little.
        later = ndimage.center_of_mass(labels[t] > 0, labels[t], ids)
        both = [(first[i - 1], c) for i, c in zip(ids, later, strict=True) if i <= len(first)]
        shift = np.median([np.abs(np.subtract(a, b)).max() for a, b in both if not np.isnan(a[0])])
        assert shift < 3
        assert int(cc3d.connected_components(labels[t], connectivity=6).max()) == len(ids)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_dtypes(dtype):
    image, _ = synthetic_stack((6, 32, 32), radius=5, dtype=dtype, seed=0)
    assert image.dtype == dtype
    if dtype == np.float32:
        assert 0 <= image.min() and image.max() < 10


def test_fast():
    synthetic_stack((4, 32, 32), seed=0)  # imports
    t = time.perf_counter()
    synthetic_stack((32, 256, 256), seed=0)
    assert time.perf_counter() - t < 3.0  # about 0.4 s alone; the machine may be shared


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": (16, 16)}, "shape"),
        ({"spacing": (1.0, 1.0)}, "spacing"),
        ({"radius": 0}, "radius"),
        ({"fill": 0}, "fill"),
        ({"psf": (-1, 1)}, "psf"),
        ({"noise": -0.1}, "noise"),
        ({"attenuation": 1.0}, "attenuation"),
        ({"dtype": np.int8}, "dtype"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"shape": (4, 16, 16), **kwargs}
    with pytest.raises(ValueError, match=match):
        synthetic_stack(**kwargs)
