"""One plane's passes: the probe's foreground check (CPU, no network)."""

import numpy as np

from napari_binseg.size import estimate_diameter
from napari_binseg.unet.passes import _foreground_diameter


def test_foreground_diameter_skips_only_what_cannot_exceed():
    """The distance transform is skipped only where no component could hold a disc wider
    than ``above``; otherwise the value is estimate_diameter's."""
    yy, xx = np.mgrid[:64, :64]
    mask = (yy - 20) ** 2 + (xx - 20) ** 2 < 15**2  # a disc of diameter ~30
    mask |= (yy - 50) ** 2 + (xx - 50) ** 2 < 5**2  # and one of ~10
    full = estimate_diameter(mask)
    assert 28 < full < 34
    largest = 2 * 1.05 * np.sqrt(mask[:40, :40].sum() / np.pi)  # the disc's bound, ~31.5
    assert _foreground_diameter(mask, 0.0) == full
    assert _foreground_diameter(mask, largest - 0.5) == full
    assert _foreground_diameter(mask, largest + 0.5) is None
    assert _foreground_diameter(np.zeros((64, 64), bool), 0.0) is None
