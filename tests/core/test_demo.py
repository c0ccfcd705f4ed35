"""The headless main job: the whole pipeline on the packaged sample, outputs on disk."""

import json

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage as ndi

from napari_binseg import cli
from napari_binseg.demo import run_headless


def test_headless_demo_writes_reproducible_outputs(tmp_path, sample_image, sample_labels):
    summary = run_headless(tmp_path)

    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["ground_truth_count"] == 179
    # Otsu of this sample is 15 (scikit-image); the mask on disk is image > 15, holes filled.
    assert summary["otsu"]["threshold"] == 15.0
    mask = tifffile.imread(tmp_path / "otsu_mask.tif")
    np.testing.assert_array_equal(mask, ndi.binary_fill_holes(sample_image > 15))
    # Both pipelines find about the right number of nuclei and match most of them.
    for name in ("otsu", "unet"):
        labels = tifffile.imread(tmp_path / f"{name}_labels.tif")
        table = pd.read_csv(tmp_path / f"{name}_objects.csv")
        assert len(table) == summary[name]["count"] == len(np.unique(labels)) - 1
        assert 150 <= summary[name]["count"] <= 210
        assert summary[name]["f1_at_0_5"] > 0.8
    assert summary["unet"]["f1_at_0_5"] > summary["otsu"]["f1_at_0_5"]


def test_demo_subcommand_headless(tmp_path, capsys):
    assert cli.main(["demo", "--headless", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "unet_labels.tif").is_file()
    assert "outputs written to" in capsys.readouterr().out
