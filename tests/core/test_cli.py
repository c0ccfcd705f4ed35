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
        ("threshold_range", "thresholds must be <= 1"),
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


# ---------------------------------------------------------------- flags from the options


def _help(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


def test_every_option_has_a_flag_with_its_help(capsys):
    from napari_binseg.cli._flags import flag_name
    from napari_binseg.options import (
        BatchOptions,
        CountOptions,
        EvaluateOptions,
        ThresholdOptions,
        TrainOptions,
        UNetOptions,
        options_of,
    )

    commands = {
        "segment": [(ThresholdOptions, "threshold-"), (UNetOptions, ""), (CountOptions, ""),
                    (BatchOptions, "")],
        "evaluate": [(EvaluateOptions, "")],
        "train": [(TrainOptions, "")],
    }  # fmt: skip
    own = {"thresholds", "augment", "init"}  # flags of their own (0.1's syntax)
    for command, stages in commands.items():
        text = " ".join(_help(command, capsys).split())
        for cls, prefix in stages:
            for opt in options_of(cls):
                if opt.name in own or (cls is CountOptions and opt.name == "diameter"):
                    continue
                shared = prefix if opt.name in ("fill_holes", "min_size") else ""
                flag = flag_name(opt, shared.replace("-", "_"))
                assert flag in text, (command, flag)
                assert " ".join(opt.help.rstrip(".").split()[:4]) in text, (command, opt.name)


@pytest.mark.parametrize(
    ("flags", "section", "expected"),
    [
        (["--min-size", "auto"], "count", {"min_size": None}),
        (["--max-size", "0"], "count", {"max_size": None}),
        (["--connectivity", "8", "--split-touching", "intensity"], "count",
         {"connectivity": 8, "split_touching": "intensity"}),
        (["--no-split", "--no-fill-holes", "--exclude-border"], "count",
         {"split_touching": False, "fill_holes": False, "exclude_border": True}),
        (["--precision", "float32", "--tile-size", "256", "--diameter", "none"], "unet",
         {"precision": "float32", "tile_size": 256, "diameter": None}),
        ([], "unet", {"prob_threshold": None}),  # the model's own
        (["--prob-threshold", "0.4"], "unet", {"prob_threshold": 0.4}),
        (["--prob-threshold", "model"], "unet", {"prob_threshold": None}),
        (["--prob-threshold", "0"], "unet", {"prob_threshold": None}),
        ([], "unet", {"min_confidence": None}),  # the model's own
        (["--min-confidence", "0"], "unet", {"min_confidence": 0.0}),  # off, not the model's
        (["--min-confidence", "0.9"], "unet", {"min_confidence": 0.9}),
        (["--min-confidence", "model"], "unet", {"min_confidence": None}),
        (["--threshold-min-size", "5", "--invert", "--sigma", "2"], "threshold",
         {"min_size": 5, "invert": True, "sigma": 2.0}),
        ([], "threshold", {"sigma": "auto"}),
        (["--sigma", "0"], "threshold", {"sigma": 0.0}),
        (["--sigma", "auto"], "threshold", {"sigma": "auto"}),
    ],
)  # fmt: skip
def test_flags_set_their_options(flags, section, expected):
    from napari_binseg.cli import _settings_from_args, build_parser

    args = build_parser().parse_args(["segment", "x.tif", "--out", "o", *flags])
    got = getattr(_settings_from_args(args), section)
    assert {k: getattr(got, k) for k in expected} == expected


def test_flags_left_out_keep_the_settings_file(tmp_path):
    from napari_binseg.cli import _settings_from_args, build_parser
    from napari_binseg.settings import PipelineSettings

    path = tmp_path / "s.json"
    PipelineSettings("li", count={"max_size": 90.0, "min_size": 4.0}).to_json(path)
    args = build_parser().parse_args(["segment", "x", "--out", "o", "--settings", str(path),
                                      "--min-size", "6"])  # fmt: skip
    s = _settings_from_args(args)
    assert (s.method, s.count.min_size, s.count.max_size) == ("li", 6.0, 90.0)


def test_bad_flag_values_exit_2_naming_the_flag(tmp_path, capsys):
    for flags, message in [
        (["--tile-size", "12.5"], "argument --tile-size: expected an integer"),
        (["--min-size", "big"], "argument --min-size: expected auto or a size"),
        (["--split-touching", "maybe"], "expected true, false or intensity"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(["segment", str(tmp_path), "--out", str(tmp_path / "o"), *flags])
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_segment_runs_the_models_own_prob_threshold(tmp_path, sample_image):
    """Without --prob-threshold the model's config.json value runs (it was always 0.5)."""
    from napari_binseg.io import imread
    from tests.unet.conftest import bundled_copy

    strict = bundled_copy(tmp_path / "strict", prob_threshold=0.9)
    imwrite(tmp_path / "in" / "crop.tif", sample_image[:192, :192])

    def labels(*flags):
        out = tmp_path / f"out{len(list(tmp_path.glob('out*')))}"
        args = ["segment", str(tmp_path / "in"), "--out", str(out), "--method", "unet",
                "--device", "cpu", "-q", *flags]  # fmt: skip
        assert main(args) == 0
        return imread(out / "crop_labels.tif")[0]

    own = labels("--model", str(strict))
    np.testing.assert_array_equal(own, labels("--prob-threshold", "0.9"))
    bundled = labels()
    assert 0 < np.count_nonzero(own) < 0.95 * np.count_nonzero(bundled)
    np.testing.assert_array_equal(
        labels("--model", str(strict), "--prob-threshold", "0.5"), bundled
    )


def test_segment_prints_this_packages_warnings_as_one_line_per_file(tmp_path, sample_images):
    """Two files of nuclei too small for the U-Net (a sample at 0.25x): one line each on
    stderr, naming the file (before: Python's 'path:line: NucleiTooSmall: ...' and source
    line, once for both files)."""
    from napari_binseg.unet.scale import resize

    tiny = resize(sample_images["nuclei_003cee89357d9fe1"].astype(np.float32), (64, 64))
    for name in ("a", "b"):
        imwrite(tmp_path / "in" / f"{name}.tif", tiny)
    args = ["segment", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--method",
            "unet", "--device", "cpu"]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "napari_binseg.cli", *args], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    assert len(lines) == 2 and "NucleiTooSmall" not in result.stderr, result.stderr
    for line, name in zip(lines, ("a.tif", "b.tif"), strict=True):
        assert line.startswith(f"napari-binseg segment: {name}: warning: nuclei of about ")
        assert "too small for model 'nuclei'" in line


def test_other_libraries_warnings_keep_pythons_format(capsys, monkeypatch):
    """Only this package's warning classes become one line; others go to Python's
    ``warnings.showwarning`` as before, and so does every warning after the command."""
    import warnings

    from napari_binseg.cli._common import WarningLines
    from napari_binseg.unet.inference import NucleiTooSmall

    python = []
    monkeypatch.setattr(warnings, "showwarning", lambda *args: python.append(args[:4]))
    with WarningLines("segment") as lines:
        lines.input("a.tif")
        warnings.warn_explicit("ours", NucleiTooSmall, "x.py", 1)
        warnings.warn_explicit("theirs", RuntimeWarning, "x.py", 2)
    warnings.warn_explicit("after", NucleiTooSmall, "x.py", 3)
    assert capsys.readouterr().err == "napari-binseg segment: a.tif: warning: ours\n"
    assert [(str(m), c) for m, c, _, _ in python] == [
        ("theirs", RuntimeWarning),
        ("after", NucleiTooSmall),
    ]


def test_warning_lines_keep_the_filters_added_during_a_command(capsys, monkeypatch):
    """A module imported while the first input runs (torch, monai) adds warning filters; the
    next input keeps them (before: input() left and entered again Python's catch_warnings,
    which put back the filters of the command's start) and still tells its own warnings."""
    import warnings

    from napari_binseg.cli._common import WarningLines
    from napari_binseg.unet.inference import NucleiTooSmall

    python = []
    monkeypatch.setattr(warnings, "showwarning", lambda *args: python.append(str(args[0])))
    with WarningLines("segment") as lines:
        lines.input("a.tif")
        warnings.filterwarnings("ignore", "on import", RuntimeWarning)
        lines.input("b.tif")
        warnings.warn("on import", RuntimeWarning, stacklevel=1)
        warnings.warn("ours", NucleiTooSmall, stacklevel=1)
    assert python == []
    assert capsys.readouterr().err == "napari-binseg segment: b.tif: warning: ours\n"
    # The command's filters end with it.
    assert all(getattr(f[1], "pattern", None) != "on import" for f in warnings.filters)
