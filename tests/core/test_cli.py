"""``napari-binseg evaluate``: files and folders, CSV output, clear errors with exit code 2."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from napari_binseg.cli import main
from napari_binseg.evaluation import evaluate
from napari_binseg.io import imwrite, pair_files


def case(shift):
    """Two 10x10 nuclei; the prediction shifts the first by ``shift`` columns, misses the second
    and adds a false object. With shift 2: IoU 80/120 = 0.667 for the first nucleus."""
    truth = np.zeros((20, 40), np.uint16)
    truth[1:11, 1:11] = 1
    truth[1:11, 20:30] = 2
    pred = np.zeros_like(truth)
    pred[1:11, 1 + shift : 11 + shift] = 5
    pred[14:18, 34:38] = 6
    return truth, pred


@pytest.fixture
def folders(tmp_path):
    pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
    for name, shift in (("a", 0), ("b", 2)):
        truth, pred = case(shift)
        imwrite(pred_dir / f"{name}.tif", pred, labels=True)
        imwrite(gt_dir / f"{name}_labels.tif", truth, labels=True)
    return pred_dir, gt_dir


def test_two_files_with_csv(tmp_path, capsys):
    truth, pred = case(2)
    imwrite(tmp_path / "pred.tif", pred)
    imwrite(tmp_path / "gt.tif", truth)
    out = tmp_path / "scores.csv"
    rc = main(["evaluate", str(tmp_path / "pred.tif"), str(tmp_path / "gt.tif"),
               "--csv", str(out), "--thresholds", "0.5", "0.7"])  # fmt: skip
    assert rc == 0
    df = pd.read_csv(out)
    assert df["threshold"].tolist() == [0.5, 0.7]
    assert df["tp"].tolist() == [1, 0]
    assert df["fp"].tolist() == [1, 2]
    assert df["fn"].tolist() == [1, 2]
    assert df["ap"].tolist() == pytest.approx([1 / 3, 0])
    assert df["mean_matched_iou"].iloc[0] == pytest.approx(2 / 3)
    assert df["pixel_dice"].iloc[0] == pytest.approx(2 * 80 / (200 + 116))
    printed = capsys.readouterr().out
    assert "threshold" in printed and "0.667" in printed


def test_folders_pair_by_name_and_pool(folders, tmp_path, capsys):
    pred_dir, gt_dir = folders
    out = tmp_path / "all.csv"
    assert main(["evaluate", str(pred_dir), str(gt_dir), "--csv", str(out),
                 "--thresholds", "0.5,0.7"]) == 0  # fmt: skip
    df = pd.read_csv(out)
    assert df["file"].tolist() == ["a", "a", "b", "b", "all", "all"]
    a, b, total = (df[df["file"] == k].reset_index(drop=True) for k in ("a", "b", "all"))
    # a: exact match at both thresholds; b: match only at 0.5.
    assert a["tp"].tolist() == [1, 1] and b["tp"].tolist() == [1, 0]
    assert total["tp"].tolist() == [2, 1]
    assert total["fp"].tolist() == [2, 3] and total["fn"].tolist() == [2, 3]
    # Pooled = one image holding both cases side by side.
    (ta, pa), (tb, pb) = case(0), case(2)
    side = evaluate(np.hstack([ta, tb + 10 * (tb > 0)]), np.hstack([pa, pb + 10 * (pb > 0)]),
                    thresholds=[0.5, 0.7])  # fmt: skip
    for col in ("tp", "fp", "fn", "f1", "ap", "mean_matched_iou", "panoptic_quality"):
        np.testing.assert_allclose(total[col], side[col])
    assert total["pixel_iou"].iloc[0] == pytest.approx(side.attrs["pixel_iou"])
    assert "== all 2 files" in capsys.readouterr().out


def test_time_axis(tmp_path):
    truth, pred = case(2)
    t_stack = np.stack([truth, truth, truth])
    p_stack = np.stack([case(0)[1], pred, np.zeros_like(pred)])
    imwrite(tmp_path / "p.tif", p_stack, axes="TYX")
    imwrite(tmp_path / "g.tif", t_stack, axes="TYX")
    out = tmp_path / "t.csv"
    assert main(["evaluate", str(tmp_path / "p.tif"), str(tmp_path / "g.tif"), "--time-axis",
                 "0", "--thresholds", "0.5", "--csv", str(out)]) == 0  # fmt: skip
    df = pd.read_csv(out)
    assert df["frame"].astype(str).tolist() == ["0", "1", "2", "all"]
    assert df["tp"].tolist() == [1, 1, 0, 2]
    assert df["fn"].tolist() == [1, 1, 2, 4]


def test_binary_mask_prediction(tmp_path):
    truth, pred = case(0)
    imwrite(tmp_path / "mask.tif", (pred > 0).astype(np.uint8))
    imwrite(tmp_path / "gt.tif", truth)
    out = tmp_path / "m.csv"
    args = ["evaluate", str(tmp_path / "mask.tif"), str(tmp_path / "gt.tif"), "--csv", str(out),
            "--thresholds", "0.5"]  # fmt: skip
    assert main(args) == 0
    assert pd.read_csv(out)["tp"].tolist() == [1]  # two components, one matches
    assert main([*args, "--no-label-masks"]) == 0
    assert pd.read_csv(out)["n_pred"].tolist() == [1]


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing_gt", "does not exist"),
        ("file_and_folder", "both be files or both be folders"),
        ("unmatched", "no ground truth in"),
        ("extra_gt", "no prediction in"),
        ("shape", "has shape"),
        ("empty", "no .tif/.tiff files"),
        ("float_labels", "floating point"),
        ("bad_threshold", "not a number"),
        ("threshold_range", "must lie in"),
    ],
)
def test_errors_exit_2_with_message(folders, tmp_path, capsys, setup, message):
    pred_dir, gt_dir = folders
    args = [str(pred_dir), str(gt_dir)]
    if setup == "missing_gt":
        args = [str(pred_dir / "a.tif"), str(tmp_path / "nope.tif")]
    elif setup == "file_and_folder":
        args = [str(pred_dir / "a.tif"), str(gt_dir)]
    elif setup == "unmatched":
        (gt_dir / "b_labels.tif").unlink()
    elif setup == "extra_gt":
        imwrite(gt_dir / "c_labels.tif", case(0)[0])
    elif setup == "shape":
        imwrite(gt_dir / "b_labels.tif", np.zeros((5, 5), np.uint16))
    elif setup == "empty":
        (tmp_path / "none").mkdir()
        args = [str(tmp_path / "none"), str(gt_dir)]
    elif setup == "float_labels":
        imwrite(pred_dir / "a.tif", case(0)[1].astype(np.float32))
    elif setup == "bad_threshold":
        args += ["--thresholds", "half"]
    elif setup == "threshold_range":
        args += ["--thresholds", "1.5"]
    assert main(["evaluate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-binseg evaluate: error:") and message in err


def test_pair_files_strips_suffixes(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "g").mkdir()
    for name in ("x_pred.tif", "y.tiff"):
        imwrite(tmp_path / "p" / name, np.zeros((4, 4), np.uint8))
    for name in ("x_gt.tif", "y_masks.tif"):
        imwrite(tmp_path / "g" / name, np.zeros((4, 4), np.uint8))
    pairs = pair_files(tmp_path / "p", tmp_path / "g")
    assert [(k, p.name, g.name) for k, p, g in pairs] == [
        ("x", "x_pred.tif", "x_gt.tif"),
        ("y", "y.tiff", "y_masks.tif"),
    ]
    imwrite(tmp_path / "p" / "x.tif", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="same name"):
        pair_files(tmp_path / "p", tmp_path / "g")


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "evaluate" in capsys.readouterr().out


def test_console_script_entry_point():
    # The same dispatcher through the interpreter, as the installed script runs it.
    out = subprocess.run(
        [sys.executable, "-m", "napari_binseg.cli", "evaluate", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "PRED" in out and "--csv" in out
