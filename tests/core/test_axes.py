import numpy as np
import pytest

from napari_binseg.axes import iter_frames, resolve_axes, resolve_spacing, spatial_axes


@pytest.mark.parametrize(
    ("axes", "ndim", "expected"),
    [(None, 2, "YX"), (None, 3, "ZYX"), (None, 4, "TZYX"), ("tyx", 3, "TYX"), ("ZYX", 3, "ZYX")],
)
def test_resolve_axes(axes, ndim, expected):
    assert resolve_axes(axes, ndim) == expected


@pytest.mark.parametrize(
    ("axes", "ndim", "match"),
    [
        ("ZYX", 2, "names 3 dimensions"),
        ("XY", 2, "must be one of"),
        (None, 5, "2 to 4"),
        (3, 3, "must be one of"),
    ],
)
def test_resolve_axes_errors(axes, ndim, match):
    with pytest.raises(ValueError, match=match):
        resolve_axes(axes, ndim)


def test_spacing():
    assert spatial_axes("TZYX") == "ZYX"
    assert resolve_spacing(None, "TZYX") == (1.0, 1.0, 1.0)
    assert resolve_spacing((5, 2, 0.5, 0.5), "TZYX") == (2.0, 0.5, 0.5)
    assert resolve_spacing([0.3, 0.3], "TYX") == (0.3, 0.3)
    with pytest.raises(ValueError, match="one value per spatial axis"):
        resolve_spacing((1, 1), "ZYX")
    with pytest.raises(ValueError, match="finite and positive"):
        resolve_spacing((0, 1, 1), "ZYX")


def test_iter_frames():
    image = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    frames = list(iter_frames(image, "TZYX"))
    assert [i for i, _ in frames] == [(0,), (1,)]
    np.testing.assert_array_equal(frames[1][1], image[1])
    ((index, frame),) = iter_frames(image[0], "ZYX")
    assert index == ()
    np.testing.assert_array_equal(frame, image[0])
