"""Stage options: every bad value is a ValueError naming ``section.name``; defaults as before."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from napari_binseg.options import (
    AXES_OPTION,
    BatchOptions,
    CountOptions,
    EvaluateOptions,
    Option,
    ThresholdOptions,
    TrainOptions,
    UNetOptions,
    option,
    options_of,
)

STAGES = (ThresholdOptions, UNetOptions, CountOptions, EvaluateOptions, TrainOptions, BatchOptions)

BAD = [
    (ThresholdOptions, "scope", "plane", "threshold.scope must be one of"),
    (ThresholdOptions, "value", "high", "threshold.value must be a number"),
    (
        ThresholdOptions,
        "sigma",
        -1,
        r"threshold.sigma \('auto' or px\) must be >= 0 \(px\), got -1",
    ),
    (ThresholdOptions, "sigma", 1e5, r"threshold.sigma \('auto' or px\) must be <= 100"),
    (ThresholdOptions, "sigma", float("nan"), r"threshold.sigma \('auto' or px\) must be finite"),
    (ThresholdOptions, "invert", 1, "threshold.invert must be true or false"),
    (ThresholdOptions, "fill_holes", "yes", "threshold.fill_holes must be true or false"),
    (ThresholdOptions, "min_size", 2.5, "threshold.min_size must be an integer"),
    (ThresholdOptions, "min_size", -1, "threshold.min_size must be an integer >= 0"),
    (ThresholdOptions, "clip", 10, r"threshold.clip must be >= 50 \(%\)"),
    (ThresholdOptions, "ignore_bright_outliers", "on", "ignore_bright_outliers must be true"),
    (ThresholdOptions, "background", -1, r"threshold.background .* must be > 0 \(px\)"),
    (UNetOptions, "model", "", "unet.model must be 'nuclei' or a model path"),
    (UNetOptions, "model", 3, "unet.model must be"),
    (UNetOptions, "device", "tpu", "unet.device must be one of"),
    (UNetOptions, "tile_size", 16, "unet.tile_size must be an integer >= 32"),
    (UNetOptions, "overlap", 1.0, "unet.overlap must be < 1"),
    (UNetOptions, "batch_size", 0, "unet.batch_size must be a positive integer"),
    (UNetOptions, "prob_threshold", 0, "unet.prob_threshold must be > 0"),
    (UNetOptions, "min_confidence", 1.0, "unet.min_confidence must be < 1"),
    (UNetOptions, "min_confidence", -0.1, "unet.min_confidence .*must be >= 0"),
    (UNetOptions, "diameter", "big", r"unet.diameter \('auto', null or px\) must be a number"),
    (UNetOptions, "diameter", -3, r"unet.diameter .* must be > 0"),
    (UNetOptions, "mode", "slow", "unet.mode must be one of"),
    (UNetOptions, "precision", "half", "unet.precision must be one of"),
    (UNetOptions, "backend", "tvm", "unet.backend must be one of"),
    (CountOptions, "connectivity", 5, "count.connectivity must be one of"),
    (CountOptions, "connectivity", True, "count.connectivity must be an integer"),
    (CountOptions, "split_touching", "yes", "count.split_touching must be true, false or"),
    (CountOptions, "min_diameter", -1, "count.min_diameter must be >= 0"),
    (CountOptions, "diameter", 0.0, r"count.diameter must be > 0"),
    (CountOptions, "min_size", float("inf"), "count.min_size must be finite"),
    (CountOptions, "max_size", -2, "count.max_size must be >= 0"),
    (CountOptions, "exclude_border", None, "count.exclude_border must be true or false"),
    (CountOptions, "fill_holes", 0, "count.fill_holes must be true or false"),
    (CountOptions, "time_axis", 0.5, "count.time_axis must be an integer"),
    (EvaluateOptions, "thresholds", [0.5, 1.5], "evaluate.thresholds must be <= 1"),
    (EvaluateOptions, "thresholds", [], "evaluate.thresholds must be a non-empty list"),
    (EvaluateOptions, "thresholds", "0.5", "evaluate.thresholds must be a list of numbers"),
    (EvaluateOptions, "time_axis", "0", "evaluate.time_axis must be an integer"),
    (EvaluateOptions, "label_masks", "no", "evaluate.label_masks must be true or false"),
    (TrainOptions, "init", 3, "train.init must be 'nuclei', a model folder or None"),
    (TrainOptions, "architecture", "huge", "train.architecture must be one of"),
    (TrainOptions, "loss", "hinge", "train.loss must be one of"),
    (TrainOptions, "epochs", 0, "train.epochs must be a positive integer"),
    (TrainOptions, "steps_per_epoch", 1.5, "train.steps_per_epoch must be an integer"),
    (TrainOptions, "minutes", 0, "train.minutes must be > 0"),
    (TrainOptions, "lr", 0.0, "train.lr must be > 0"),
    (TrainOptions, "patch_size", 16, "train.patch_size must be an integer >= 32"),
    (TrainOptions, "batch_size", 0, "train.batch_size must be a positive integer"),
    (TrainOptions, "augment", ("flips", "elastic"), r"unknown augmentation\(s\) \['elastic'\]"),
    (TrainOptions, "val_fraction", 1.0, "train.val_fraction must be < 1"),
    (TrainOptions, "device", "tpu", "train.device must be one of"),
    (TrainOptions, "seed", -1, "train.seed must be an integer >= 0"),
    (TrainOptions, "threads", 0, "train.threads must be a positive integer"),
    (BatchOptions, "max_memory_mb", 0, "batch.max_memory_mb must be > 0"),
    (BatchOptions, "chunk_mb", -5, "batch.chunk_mb must be > 0"),
]


@pytest.mark.parametrize(("cls", "name", "value", "match"), BAD)
def test_bad_values_name_section_and_option(cls, name, value, match):
    with pytest.raises(ValueError, match=match):
        cls(**{name: value})
    with pytest.raises(ValueError, match=match):
        cls.from_dict({name: value})


def test_every_option_has_a_bad_value_case():
    tested = {(cls, name) for cls, name, _, _ in BAD}
    missing = [
        f"{cls.section}.{opt.name}"
        for cls in STAGES
        for opt in options_of(cls)
        if (cls, opt.name) not in tested
    ]
    assert not missing


@pytest.mark.parametrize("cls", STAGES)
def test_defaults_check_and_round_trip_through_json(cls):
    default = cls()
    for opt in options_of(cls):
        assert opt.check(opt.default, cls.section) == getattr(default, opt.name)
        assert opt.help.endswith(".") and opt.label
        assert opt.kind in (bool, int, float, str)
    back = cls.from_dict(json.loads(json.dumps(default.to_dict())))
    assert back == default
    assert [o.name for o in options_of(cls)] == [f.name for f in dataclasses.fields(cls)]


def test_min_confidence_help_says_z_stacks_keep_every_object():
    """The floor is not applied to z-stacks (unet/volume.py); the CLI and widget help say so
    in words a user of a z-stack reads (before: '2D planes only')."""
    (opt,) = [o for o in options_of(UNetOptions) if o.name == "min_confidence"]
    assert "z-stack keeps all its 3D objects" in opt.help


def test_defaults_are_those_of_version_0_1():
    assert ThresholdOptions().to_dict() == dict(
        scope="image",
        value=None,
        sigma="auto",
        invert=False,
        fill_holes=False,
        min_size=0,
        clip=None,
        ignore_bright_outliers=True,
        background=None,
    )
    u = UNetOptions()
    assert (u.model, u.device, u.tile_size, u.overlap, u.batch_size) == (
        "nuclei",
        "auto",
        1024,
        0.25,
        4,
    )
    assert (u.prob_threshold, u.diameter) == (None, "auto")  # None: the model's own
    assert CountOptions().to_dict() == dict(
        connectivity=None,
        split_touching=True,
        min_diameter=None,
        diameter=None,
        min_size=None,  # 0.2: scale-aware (a tenth of a typical nucleus); 0.1 kept all (0.0)
        max_size=None,
        exclude_border=False,
        fill_holes=True,
        time_axis=None,
    )
    t = TrainOptions()
    assert (t.init, t.architecture, t.loss, t.epochs, t.steps_per_epoch) == (
        "nuclei",
        None,
        "dice+ce",
        20,
        25,
    )
    assert (t.lr, t.patch_size, t.batch_size, t.val_fraction, t.seed) == (5e-4, 256, 4, 0.2, 0)
    assert EvaluateOptions().thresholds == tuple(np.round(np.arange(0.5, 0.951, 0.05), 2))


def test_values_are_normalized_for_json():
    u = UNetOptions(tile_size=np.int64(64), overlap=np.float32(0.5), diameter=12)
    assert type(u.tile_size) is int and type(u.overlap) is float
    assert json.loads(json.dumps(u.to_dict()))["tile_size"] == 64
    t = TrainOptions(augment=["flips"], init=Path("m"), architecture={"name": "UNet"})
    assert t.augment == ("flips",)
    assert t.to_dict()["init"] == "m" and t.to_dict()["augment"] == ["flips"]
    assert CountOptions(split_touching="intensity", connectivity=8).connectivity == 8


def test_checks_between_fields_and_replace():
    with pytest.raises(ValueError, match=r"count.max_size must be >= 5 \(count.min_size\)"):
        CountOptions(min_size=5, max_size=1)
    c = CountOptions().replace(min_size=3)
    assert c.min_size == 3
    with pytest.raises(ValueError, match="count.min_size must be >= 0"):
        c.replace(min_size=-1)
    with pytest.raises(ValueError, match="unknown setting count.min_sise; known:"):
        CountOptions.from_dict({"min_sise": 3})
    with pytest.raises(ValueError, match="count must be a JSON object"):
        CountOptions.from_dict([1, 2])


def test_option_metadata_and_describe():
    opts = {o.name: o for o in options_of(UNetOptions)}
    assert opts["tile_size"].advanced and opts["tile_size"].units == "px"
    assert opts["diameter"].nullable and opts["diameter"].special == ("auto",)
    assert opts["overlap"].describe() == "0 <= x < 1"
    assert opts["device"].describe() == "auto, cpu, cuda, mps"
    count = {o.name: o for o in options_of(CountOptions)}
    assert count["max_size"].zero_is_none and count["max_size"].units == "px|µm"
    assert count["split_touching"].special == ("intensity",)
    assert AXES_OPTION.check("TZYX", "axes") == "TZYX"
    with pytest.raises(ValueError, match="axes must be one of"):
        AXES_OPTION.check("XYZ")
    assert isinstance(AXES_OPTION, Option)


def test_option_infers_kind_and_rejects_others():
    @dataclasses.dataclass(frozen=True)
    class Demo:
        n: int = option(3, "A count.", low=0)
        word: str = option("a", "A word.", choices=("a", "b"))

    n, word = options_of(Demo)
    assert (n.kind, n.label, word.kind) == (int, "n", str)
    with pytest.raises(TypeError, match="kind"):
        option([1], "A list.")
