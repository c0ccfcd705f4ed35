"""napari_binseg.unet.training.loop: losses, the optimizer loop (a non-finite loss stops it
before the weights change) and validation through the inference path."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import napari_binseg as nb
from napari_binseg import options
from napari_binseg.unet.inference import normalize_plane
from napari_binseg.unet.network import DEFAULT_NORMALIZATION, build_network
from napari_binseg.unet.training import ARCHITECTURES, LOSSES
from napari_binseg.unet.training.data import Sampler, make_targets
from napari_binseg.unet.training.loop import NonFiniteLoss, fit, validate, validation_model

from .conftest import TINY, needs_bundled, object_f1


def test_names_match_the_options():
    assert tuple(LOSSES) == options.LOSSES
    assert tuple(ARCHITECTURES) == options.ARCHITECTURES


@pytest.mark.parametrize("name", list(LOSSES))
def test_losses_are_low_for_right_and_high_for_wrong_logits(name):
    target = torch.zeros(1, 2, 8, 8)
    target[:, :, 2:6, 2:6] = 1
    right, wrong = 10 * (2 * target - 1), -10 * (2 * target - 1)
    assert float(LOSSES[name](right, target)) < 0.05 < float(LOSSES[name](wrong, target))


def _setup(seed=0):
    torch.manual_seed(seed)
    image, labels = nb.synthetic_nuclei((64, 64), radius=6, seed=seed)
    net = build_network(TINY)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    sampler = Sampler(
        [normalize_plane(image, DEFAULT_NORMALIZATION)], [make_targets(labels)], crop=32, seed=0
    )
    return net, opt, sampler, image, labels


def test_fit_yields_steps_and_stops_on_a_non_finite_loss_before_stepping():
    net, opt, sampler, _, _ = _setup()
    calls = []

    def loss(logits, target):
        calls.append(1)
        value = LOSSES["dice+ce"](logits, target)
        return value * math.nan if len(calls) == 3 else value

    run = fit(net, opt, sampler, steps=10, lr=1e-2, batch_size=1, device="cpu", loss=loss)
    assert [s for s, _ in (next(run), next(run))] == [1, 2]
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(NonFiniteLoss, match="the training loss became nan at step 3") as info:
        next(run)
    assert info.value.step == 3
    for key, value in net.state_dict().items():  # the NaN never reached the weights
        torch.testing.assert_close(value, weights[key], rtol=0, atol=0)


def test_validation_goes_through_the_inference_path():
    net, _, _, image, labels = _setup(seed=1)
    image = image[:45, :51]  # padded to the divisor (2) by the inference path
    labels = labels[:45, :51]
    net.train()
    cache = {}
    f1, per_image, pooled = validate(
        net, TINY, DEFAULT_NORMALIZATION, [image], [labels], "cpu", loss=LOSSES["ce"],
        target_cache=cache,
    )  # fmt: skip
    assert net.training  # the training network is left as it was
    # The targets of the one full-size pass, kept for the next epoch's validation.
    assert list(cache) == [(0, (45, 51))]
    np.testing.assert_array_equal(cache[0, (45, 51)].numpy(), make_targets(labels))
    # The one-pass prediction of the eval-mode network on the normalized, padded plane.
    with torch.inference_mode():
        x = torch.from_numpy(normalize_plane(image, DEFAULT_NORMALIZATION))[None, None]
        ref = net.eval()(F.pad(x, (0, 1, 0, 1), mode="reflect"))[:, :, :45, :51]
    net.train()
    target = torch.from_numpy(make_targets(labels).astype(np.float32))[None]
    assert pooled.attrs["loss"] == pytest.approx(float(LOSSES["ce"](ref, target)), abs=1e-6)
    lm = validation_model(net, TINY, DEFAULT_NORMALIZATION, "cpu")
    probs = nb.unet.predict_channels(image, lm, device="cpu", backend="torch")
    np.testing.assert_allclose(probs, torch.sigmoid(ref[0]).numpy(), atol=1e-6)
    assert 0 <= f1 <= 1 and 0 <= per_image <= 1


@needs_bundled
def test_validation_scores_what_segment_gives_at_its_scale():
    """Nuclei of ~84 pixels: segment() runs the bundled model at 0.25x; validation scores
    that, not the full-size pass (which cuts nuclei up) nor any other scale."""
    from napari_binseg._sample_data import load_sample
    from napari_binseg.unet.network import load_model
    from napari_binseg.unet.scale import labels_resized, resize

    image, labels, _ = load_sample("nuclei_2d")
    image = resize(image.astype(np.float32), (1560, 2088))[:768, :1024]
    labels = labels_resized(labels, (1560, 2088))[:768, :1024]
    lm = load_model("nuclei", device="cpu")
    post = lm.config["postprocess"]
    args = (lm.module, lm.config["network"], lm.config["normalization"], [image], [labels])
    f1 = validate(*args, "cpu", postprocess=post)[0]
    full_size = validate(*args, "cpu", postprocess=post | {"diameter": None})[0]
    pred, info = nb.segment(
        image, lm, device="cpu", backend="torch", precision="float32", return_info=True
    )
    assert info["scales"] == [0.25]
    assert f1 == object_f1(labels, pred)
    assert f1 > full_size + 0.03


def test_validation_uses_the_models_post_processing():
    """Objects come from the ``postprocess`` section given (what segment() will use)."""
    net, _, _, image, labels = _setup(seed=1)
    args = (net, TINY, DEFAULT_NORMALIZATION, [image], [labels], "cpu")
    default = validate(*args)[0]
    same = validate(*args, postprocess={"prob_threshold": 0.5, "seed_threshold": 0.5,
                                        "min_size": 8, "diameter": 12.0})[0]  # fmt: skip
    assert same == default
    assert validate(*args, postprocess={"min_size": 64 * 64 + 1})[0] == 0.0


def test_validation_applies_the_models_confidence_floor(monkeypatch):
    """The object-confidence floor of ``postprocess`` (a fine-tune inherits its init's, 0.85
    from the bundled model) runs as in segment(); none where the section has none (before,
    validation kept every object where segment() drops those under the floor)."""
    from napari_binseg.unet import passes

    floors = []
    auto_unit = passes._auto_unit

    def recording(unit, lm, runner, threshold, probing, info, min_confidence=0.0, **kw):
        floors.append(min_confidence)
        return auto_unit(unit, lm, runner, threshold, probing, info, min_confidence, **kw)

    monkeypatch.setattr(passes, "_auto_unit", recording)
    net, _, _, image, labels = _setup(seed=1)
    args = (net, TINY, DEFAULT_NORMALIZATION, [image], [labels], "cpu")
    validate(*args, postprocess={"min_confidence": 0.7})
    validate(*args)
    assert floors == [0.7, 0.0]
