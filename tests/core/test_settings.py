"""Settings JSON: composition of the stage options, files of 0.1 (version 1) still load."""

import json

import pytest

from napari_binseg.options import CountOptions, ThresholdOptions, UNetOptions
from napari_binseg.settings import (
    SETTINGS_VERSION,
    CountSettings,
    PipelineSettings,
    ThresholdSettings,
    UNetSettings,
    migrate_settings,
)

#: Written by napari-binseg 0.1 (PipelineSettings(...).to_json() of /work/base).
VERSION_1 = """{
  "version": 1,
  "method": "manual",
  "threshold": {"scope": "slice", "value": 120.5, "sigma": 1.0, "invert": false,
                "fill_holes": false, "min_size": 0},
  "unet": {"model": "nuclei", "device": "auto", "tile_size": 256, "overlap": 0.25,
           "batch_size": 4, "prob_threshold": 0.5, "diameter": null},
  "count": {"connectivity": null, "split_touching": "intensity", "min_diameter": null,
            "min_size": 3.5, "max_size": null, "exclude_border": false, "fill_holes": true,
            "time_axis": 0}
}"""


def test_a_version_1_file_loads_with_its_values(tmp_path):
    path = tmp_path / "v1.json"
    path.write_text(VERSION_1)
    s = PipelineSettings.from_json(path)
    assert s.method == "manual" and s.threshold.value == 120.5 and s.threshold.scope == "slice"
    assert s.unet.tile_size == 256 and s.unet.diameter is None
    assert s.count.split_touching == "intensity" and s.count.min_size == 3.5
    assert s.count.time_axis == 0 and s.axes is None
    again = json.loads(s.to_json())
    assert again["version"] == SETTINGS_VERSION
    assert PipelineSettings.from_dict(again) == s
    # every key of version 1 is still there, with the same value
    old = json.loads(VERSION_1)
    for section in ("threshold", "unet", "count"):
        assert {k: again[section][k] for k in old[section]} == old[section]


def test_version_1_defaults_are_0_1_defaults():
    # 0.1 kept every object by default; version 2's default min_size is automatic.
    s = PipelineSettings.from_dict({"version": 1, "count": {"split_touching": False}})
    assert s.count.min_size == 0.0
    assert PipelineSettings.from_dict({"version": 1}).count.min_size == 0.0
    assert migrate_settings({"version": 1, "method": "li"}) == {
        "method": "li",
        "count": {"min_size": 0.0},
        "threshold": {"ignore_bright_outliers": False, "sigma": 0.0},
        "unet": {"prob_threshold": 0.5, "min_confidence": 0.0},
    }
    assert migrate_settings({"method": "li"}) == {"method": "li"}  # no version: current


def test_files_before_version_3_keep_plain_thresholds():
    # The bright-outlier rule came with version 3: older files reproduce their old thresholds.
    assert not PipelineSettings.from_dict({"version": 2}).threshold.ignore_bright_outliers
    old = PipelineSettings.from_dict({"version": 2, "threshold": {"sigma": 1.5}}).threshold
    assert (old.sigma, old.ignore_bright_outliers) == (1.5, False)
    kept = {"version": 2, "threshold": {"ignore_bright_outliers": True}}
    assert PipelineSettings.from_dict(kept).threshold.ignore_bright_outliers
    assert PipelineSettings.from_dict({"version": 3}).threshold.ignore_bright_outliers
    again = PipelineSettings.from_dict(PipelineSettings().to_dict())
    assert again.threshold.ignore_bright_outliers and again == PipelineSettings()


def test_files_before_version_4_keep_prob_threshold_0_5():
    # Until version 4 the U-Net ran at 0.5 unless told otherwise; now the model's own value.
    assert PipelineSettings.from_dict({"version": 3}).unet.prob_threshold == 0.5
    kept = {"version": 2, "unet": {"prob_threshold": 0.3}}
    assert PipelineSettings.from_dict(kept).unet.prob_threshold == 0.3
    assert PipelineSettings.from_dict({"version": 4}).unet.prob_threshold is None
    assert PipelineSettings().unet.prob_threshold is None
    again = PipelineSettings.from_json(PipelineSettings("unet").to_json())
    assert again.unet.prob_threshold is None and again == PipelineSettings("unet")


def test_files_before_version_6_keep_every_unet_object():
    # Until version 6 the U-Net kept every object; now the model's own confidence floor.
    assert PipelineSettings.from_dict({"version": 5}).unet.min_confidence == 0.0
    kept = {"version": 5, "unet": {"min_confidence": 0.7}}
    assert PipelineSettings.from_dict(kept).unet.min_confidence == 0.7
    assert PipelineSettings.from_dict({"version": 6}).unet.min_confidence is None
    assert PipelineSettings().unet.min_confidence is None
    for value in (None, 0.0, 0.6):
        s = PipelineSettings("unet", unet={"min_confidence": value})
        assert PipelineSettings.from_json(s.to_json()).unet.min_confidence == value


def test_files_before_version_5_keep_no_smoothing():
    # Until version 5 the threshold smoothed only when told; now "auto" on noisy images.
    assert PipelineSettings.from_dict({"version": 4}).threshold.sigma == 0.0
    kept = {"version": 4, "threshold": {"sigma": 1.5}}
    assert PipelineSettings.from_dict(kept).threshold.sigma == 1.5
    assert PipelineSettings.from_dict({"version": 5}).threshold.sigma == "auto"
    assert PipelineSettings().threshold.sigma == "auto"
    again = PipelineSettings.from_json(PipelineSettings().to_json())
    assert again.threshold.sigma == "auto" and again == PipelineSettings()


@pytest.mark.parametrize("version", [0, 99, "1", True, None, 1.5])
def test_unknown_versions_are_refused(version):
    with pytest.raises(ValueError, match=f"settings version {version!r} is not supported"):
        PipelineSettings.from_dict({"version": version})


def test_settings_compose_the_stage_options():
    assert ThresholdSettings is ThresholdOptions
    assert UNetSettings is UNetOptions and CountSettings is CountOptions
    s = PipelineSettings("li", threshold={"sigma": 2.0}, axes="TYX")
    assert isinstance(s.threshold, ThresholdOptions) and s.threshold.sigma == 2.0
    assert s.replace(count={"max_size": 50.0}).count.max_size == 50.0
    assert s.replace(count={"max_size": 50.0}).threshold == s.threshold
    assert PipelineSettings.from_json(s.to_json()) == s
    with pytest.raises(ValueError, match="axes must be one of"):
        PipelineSettings(axes="XY")
    with pytest.raises(ValueError, match="unknown setting 'spacing'"):
        PipelineSettings.from_dict({"spacing": [1, 1]})
    with pytest.raises(ValueError, match="count must be a CountOptions or a dict"):
        PipelineSettings(count=3)


def test_deeply_nested_json_is_one_clear_error(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"count": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ValueError, match="deep.json is not valid JSON: nested too deeply"):
        PipelineSettings.from_json(path)
    nested = {"count": {"min_size": [[[[[[[[[[1]]]]]]]]]]}}
    with pytest.raises(ValueError, match="nested deeper than 8 levels"):
        PipelineSettings.from_dict(nested)
