"""Padding of a unit to the network's divisor (CPU, no network)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_binseg.unet.tiling import _pad_to


@pytest.mark.parametrize(
    ("shape", "target", "mode"),
    [
        ((5, 7), (8, 8), "reflect"),
        ((3, 7), (8, 16), "replicate"),
        ((3, 3, 4), (4, 4, 4), "reflect"),
        ((2, 3, 4), (4, 4, 4), "replicate"),
    ],
)
def test_pad_to_mirrors_short_pads_and_repeats_long_ones(shape, target, mode):
    """Values as torch's F.pad gave before the ndarray path: mirrored (edge not repeated)
    where every pad is shorter than its side, else the edge repeated."""
    x = np.arange(np.prod(shape), dtype=np.float32).reshape((1, 1) + shape)
    pads = [p for s, t in zip(reversed(shape), reversed(target), strict=True) for p in (0, t - s)]
    expected = F.pad(torch.from_numpy(x), pads, mode=mode).numpy()
    np.testing.assert_array_equal(_pad_to(x, target), expected)
    assert _pad_to(x, shape) is x
