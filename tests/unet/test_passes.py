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


def _fake_estimate(monkeypatch, probe, look):
    """``passes._estimate`` on a 600x1280 plane with network passes replaced: the probe
    estimates ``probe`` px and its foreground is one disc of ~320 px (so the look runs); the
    look estimates ``look`` px (None: no object)."""
    from types import SimpleNamespace

    from napari_binseg.unet import passes

    def coarse_pass(x, lm, runner, prob_threshold, resize_by, plane_scale, extra=False, **kw):
        h, w = round(x.shape[0] * resize_by), round(x.shape[1] * resize_by)
        yy, xx = np.mgrid[:h, :w]
        fg = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2 < 40**2).astype(np.float32)
        found = probe if plane_scale == passes.PROBE_SCALE else look
        probs = np.stack([fg, fg])
        return np.zeros((h, w), np.float32), np.zeros((h, w), np.int32), probs, found, 0.0

    monkeypatch.setattr(passes, "_coarse_pass", coarse_pass)
    post = {"diameter": 19.3, "max_scale": 3.0}
    lm = SimpleNamespace(config={"postprocess": post, "divisor": 16, "foreground_channel": 0})
    found, scale, _, looked = passes._estimate(np.zeros((600, 1280), np.float32), lm, None, 0.5)
    assert looked
    return found, scale


def test_a_look_that_sees_one_sheet_stops_the_probe_downsampling(monkeypatch):
    """A probe of 65 px sends the plane to 0.5x; where its look saw one sheet (a median
    object over half the plane's shorter side: small nuclei clumped at both coarse scales,
    as on a dense DSB plane of 13-px nuclei, rotated) the full-size pass decides instead
    (scale None). A look that saw no object, or a plausible size, changes nothing."""
    assert _fake_estimate(monkeypatch, 65.0, 400.0) == (65.0, None)
    assert _fake_estimate(monkeypatch, 65.0, None) == (65.0, 0.5)
    assert _fake_estimate(monkeypatch, 65.0, 80.0) == (65.0, 0.5)  # no overrule, no sheet
    assert _fake_estimate(monkeypatch, 12.0, 400.0) == (12.0, 1.75)  # upsampling stays
