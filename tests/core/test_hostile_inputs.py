"""Hostile inputs through every public function and command (issue 15).

Each bad input must give a ``ValueError`` (exit code 2 and one line for a command) whose
message names the problem, and must leave the caller's array as it was. A few inputs that are
not errors (big-endian data, a read-only mask, one NaN pixel) must give the answer of the
ordinary input.
"""

import json

import numpy as np
import pytest

import napari_binseg as nb
from napari_binseg.cli import main
from napari_binseg.io import imwrite
from napari_binseg.settings import PipelineSettings

# ------------------------------------------------------------------- arrays into functions

#: (id, array, words one of which the message must hold)
BAD_IMAGES = [
    ("empty", np.zeros((0, 8), np.uint8), ("empty",)),
    ("1d", np.arange(10, dtype=np.uint8), ("dimension",)),
    ("5d", np.zeros((2, 2, 2, 8, 8), np.uint8), ("dimension",)),
    ("text", np.array([["a", "b"], ["c", "d"]]), ("numeric", "dtype")),
    ("complex", np.ones((8, 8), np.complex64), ("numeric", "dtype")),
    ("objects", np.array([[object(), 1], [2, 3]], dtype=object), ("numeric", "dtype")),
    ("rgb", np.zeros((16, 16, 3), np.uint8), ("RGB",)),
]
BAD_LABELS = [
    ("empty", np.zeros((0, 8), np.uint8), ("empty",)),
    ("1d", np.arange(10, dtype=np.uint8), ("dimension",)),
    ("float", np.ones((8, 8), np.float32), ("float",)),
    ("text", np.array([["a", "b"], ["c", "d"]]), ("integer", "dtype")),
    ("negative", np.full((8, 8), -1, np.int32), ("negative",)),
]


def _segment(image):
    return nb.segment(image, device="cpu", backend="torch")


def _predict(image):
    return nb.predict(image, device="cpu", backend="torch")


IMAGE_FUNCTIONS = {
    "threshold": nb.threshold,
    "threshold_value": nb.threshold_value,
    "run_pipeline": nb.run_pipeline,
    "segment": _segment,
    "predict": _predict,
}
LABEL_FUNCTIONS = {
    "count_cells": nb.count_cells,
    "measure_objects": nb.measure_objects,
    "split_touching": nb.split_touching,
    "count_summary": nb.count_summary,
    "evaluate": lambda labels: nb.evaluate(labels, labels),
    "pixel_scores": lambda labels: nb.pixel_scores(labels, labels),
}

#: Cases another engineer owns that are not fixed yet: (function, input id) -> reason.
KNOWN = {}


def _run(func, data, words):
    before = data.copy()
    with pytest.raises(ValueError) as info:
        func(data)
    message = str(info.value)
    assert any(w.lower() in message.lower() for w in words), message
    assert "\n" not in message.strip()
    assert data.dtype == before.dtype and data.shape == before.shape
    if data.dtype != object:
        np.testing.assert_array_equal(data, before)


def _isolated(fname, case_id, _unused=None):
    """Run a known-bad case in its own process: some write out of bounds and crash later."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys\n"
        "from tests.core.test_hostile_inputs import _lookup, _run\n"
        "_run(*_lookup(sys.argv[1], sys.argv[2]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code, fname, case_id], cwd=root, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]


def _lookup(fname, case_id):
    """``(function, array, words)`` of a case, by the names of its test id."""
    functions = IMAGE_FUNCTIONS | LABEL_FUNCTIONS
    table = BAD_IMAGES if fname in IMAGE_FUNCTIONS else BAD_LABELS
    data, words = next((d, w) for c, d, w in table if c == case_id)
    return functions[fname], data, words


def _cases(functions, table):
    for fname, func in functions.items():
        for case_id, data, words in table:
            if (fname, case_id) in KNOWN:
                mark = pytest.mark.xfail(strict=True, reason=KNOWN[fname, case_id])
                yield pytest.param(
                    _isolated, fname, case_id, None, id=f"{fname}-{case_id}", marks=mark
                )
            else:
                yield pytest.param(_run, func, data, words, id=f"{fname}-{case_id}")


@pytest.mark.parametrize(
    ("check", "func", "data", "words"), list(_cases(IMAGE_FUNCTIONS, BAD_IMAGES))
)
def test_bad_images_are_one_clear_error(check, func, data, words):
    check(func, data, words)


@pytest.mark.parametrize(
    ("check", "func", "data", "words"), list(_cases(LABEL_FUNCTIONS, BAD_LABELS))
)
def test_bad_labels_are_one_clear_error(check, func, data, words):
    check(func, data, words)


def test_rgb_into_count_cells_is_refused():
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[4:8, 4:8] = 1
    _run(nb.count_cells, rgb, ("RGB",))


@pytest.mark.parametrize(
    ("func", "kwargs", "words"),
    [
        (nb.threshold, {"sigma": 1e5}, ("sigma",)),
        (nb.threshold, {"sigma": -1}, ("sigma",)),
        (nb.threshold, {"scope": "plane"}, ("scope",)),
        (nb.threshold, {"min_size": -2}, ("min_size",)),
        (nb.count_cells, {"min_size": -1}, ("min_size",)),
        (nb.count_cells, {"connectivity": 5}, ("connectivity",)),
        (nb.count_cells, {"split_touching": "maybe"}, ("split_touching",)),
        (nb.count_cells, {"spacing": (0, 1)}, ("spacing",)),
        (nb.count_cells, {"axes": "XYZ"}, ("axes",)),
        (nb.evaluate, {"thresholds": [1.5]}, ("thresholds",)),
        (_segment, {"tile_size": 4}, ("tile_size",)),
    ],
    ids=lambda v: getattr(v, "__name__", None) if callable(v) else None,
)
def test_bad_options_are_one_clear_error(func, kwargs, words):
    image = nb.synthetic_nuclei((32, 32), n=3, seed=0)[0]
    data = (image > image.mean()).astype(np.uint8) if func is not nb.threshold else image
    if func is nb.evaluate:
        _run(lambda d: func(d, d, **kwargs), data, words)
    elif func is _segment:
        _run(lambda d: nb.segment(d, device="cpu", backend="torch", **kwargs), image, words)
    else:
        _run(lambda d: func(d, **kwargs), data, words)


def test_run_pipeline_refuses_bad_settings_and_axes():
    image = nb.synthetic_nuclei((32, 32), n=3, seed=0)[0]
    _run(lambda d: nb.run_pipeline(d, settings={"method": "otsu"}), image, ("PipelineSettings",))
    _run(lambda d: nb.run_pipeline(d, axes="ZYX"), image, ("axes",))
    _run(lambda d: nb.run_pipeline(d, spacing=(1, 1, 1, 1)), image, ("spacing",))


# ----------------------------------------------------------- inputs that must just work


@pytest.fixture(scope="module")
def cells():
    return nb.synthetic_nuclei((64, 64), n=6, seed=5)[0]


@pytest.mark.parametrize("dtype", [">u2", ">f4", ">f8", ">i4"])
def test_big_endian_thresholds_like_native(cells, dtype):
    native = cells.astype(dtype[1:])
    swapped = cells.astype(dtype)
    before = swapped.copy()
    np.testing.assert_array_equal(nb.threshold(swapped), nb.threshold(native))
    assert nb.threshold_value(swapped) == pytest.approx(nb.threshold_value(native))
    np.testing.assert_array_equal(swapped, before)


def test_read_only_mask_counts_like_a_writable_one(cells, tmp_path):
    import tifffile

    mask = nb.threshold(cells)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    read_only = tifffile.memmap(tmp_path / "mask.tif", mode="r")
    labels, table = nb.count_cells(read_only, cells)
    ref, ref_table = nb.count_cells(mask, cells)
    np.testing.assert_array_equal(labels, ref)
    assert len(table) == len(ref_table)


@pytest.mark.slow
def test_one_nan_pixel_does_not_empty_the_unet(cells):
    image = cells.astype(np.float32)
    ref = nb.segment(image, device="cpu", backend="torch")
    image[0, 0] = np.nan
    before = image.copy()
    try:
        labels = nb.segment(image, device="cpu", backend="torch")
    except ValueError as exc:  # refusing is allowed, if it says why
        assert "nan" in str(exc).lower()
        return
    np.testing.assert_array_equal(image, before)
    assert labels.max() >= 0.8 * ref.max() and labels[0, 0] == 0


# -------------------------------------------------------------------------- commands


def _tiff_bytes(tmp_path):
    path = tmp_path / "good.tif"
    imwrite(path, nb.synthetic_nuclei((32, 32), n=3, seed=1)[0])
    return path.read_bytes()


def _huge_declared(path):
    """A 122-byte TIFF whose header declares 200000 x 200000 pixels."""
    import struct

    entries = [(256, 4, 200000), (257, 4, 200000), (258, 3, 8), (259, 3, 1), (262, 3, 1),
               (273, 4, 8), (277, 3, 1), (278, 4, 200000), (279, 4, 1)]  # fmt: skip
    buf = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, val in entries:
        packed = struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val)
        buf += struct.pack("<HHI", tag, typ, 1) + packed
    path.write_bytes(buf + struct.pack("<I", 0))


BAD_FILES = {
    "truncated": (lambda p, good: p.write_bytes(good[: len(good) // 2]), "truncated"),
    "header-only": (lambda p, good: p.write_bytes(good[:8]), "holds no image"),
    "not-a-tiff": (lambda p, good: p.write_bytes(b"hello"), "not a readable TIFF"),
    "huge-declared": (lambda p, good: _huge_declared(p), "more than the available memory"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_evaluate_on_bad_files_exits_2_in_one_line(tmp_path, capsys, case):
    good = _tiff_bytes(tmp_path)
    make, message = BAD_FILES[case]
    make(tmp_path / "bad.tif", good)
    assert main(["evaluate", str(tmp_path / "bad.tif"), str(tmp_path / "good.tif")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_segment_on_bad_files_reports_them_and_continues(tmp_path, capsys, case):
    good = _tiff_bytes(tmp_path)
    make, message = BAD_FILES[case]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "good.tif").write_bytes(good)
    make(tmp_path / "in" / "bad.tif", good)
    assert main(["segment", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "-q"]) == 1
    captured = capsys.readouterr()
    assert "segmented 1 of 2 files" in captured.out
    assert "bad.tif: error:" in captured.err and "Traceback" not in captured.err


def test_evaluate_csv_naming_a_folder_exits_2(tmp_path, capsys):
    _tiff_bytes(tmp_path)
    (tmp_path / "scores").mkdir()
    good = str(tmp_path / "good.tif")
    assert main(["evaluate", good, good, "--csv", str(tmp_path / "scores")]) == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ('{"count": ' + '{"a": ' * 20 + "1" + "}" * 20 + "}", "nested deeper"),
        ("[1, 2]", "must be a JSON object"),
        ('{"count": {"min_size": "big"}}', "count.min_size must be a number"),
        ("\xff\xfe garbage", "cannot read --settings"),
    ],
)
def test_segment_with_bad_settings_files_exits_2(tmp_path, capsys, text, message):
    _tiff_bytes(tmp_path)
    (tmp_path / "s.json").write_text(text, encoding="latin-1")
    out = tmp_path / "out"
    rc = main(["segment", str(tmp_path / "good.tif"), "--out", str(out), "--settings",
               str(tmp_path / "s.json")])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([1, 2, 3], "must hold a JSON object of training options, got list"),
        ({"epochs": "ten"}, "epochs must be"),
        ({"augment": "flips"}, "augment"),
        ({"lr": [0.1]}, "lr must be"),
        ({"epochz": 3}, "epochz"),
        (
            {
                "augment": [
                    [
                        [
                            [
                                [
                                    [
                                        [
                                            [
                                                [
                                                    [
                                                        [
                                                            [
                                                                [
                                                                    [
                                                                        [
                                                                            [
                                                                                [
                                                                                    [
                                                                                        [
                                                                                            [
                                                                                                [
                                                                                                    [
                                                                                                        [
                                                                                                            [
                                                                                                                [
                                                                                                                    [
                                                                                                                        [
                                                                                                                            [
                                                                                                                                [
                                                                                                                                    [
                                                                                                                                        [
                                                                                                                                            [
                                                                                                                                                [
                                                                                                                                                    [
                                                                                                                                                        [
                                                                                                                                                            [
                                                                                                                                                                [
                                                                                                                                                                    [
                                                                                                                                                                        [
                                                                                                                                                                            "flips"
                                                                                                                                                                        ]
                                                                                                                                                                    ]
                                                                                                                                                                ]
                                                                                                                                                            ]
                                                                                                                                                        ]
                                                                                                                                                    ]
                                                                                                                                                ]
                                                                                                                                            ]
                                                                                                                                        ]
                                                                                                                                    ]
                                                                                                                                ]
                                                                                                                            ]
                                                                                                                        ]
                                                                                                                    ]
                                                                                                                ]
                                                                                                            ]
                                                                                                        ]
                                                                                                    ]
                                                                                                ]
                                                                                            ]
                                                                                        ]
                                                                                    ]
                                                                                ]
                                                                            ]
                                                                        ]
                                                                    ]
                                                                ]
                                                            ]
                                                        ]
                                                    ]
                                                ]
                                            ]
                                        ]
                                    ]
                                ]
                            ]
                        ]
                    ]
                ]
            },
            "nested too deeply",
        ),
    ],
)
def test_train_with_a_bad_config_exits_2(tmp_path, capsys, config, message):
    (tmp_path / "c.json").write_text(json.dumps(config))
    rc = main(["train", "--images", str(tmp_path), "--labels", str(tmp_path), "--out",
               str(tmp_path / "m"), "--config", str(tmp_path / "c.json")])  # fmt: skip
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "m").exists()


@pytest.fixture
def pairs(tmp_path):
    image, labels = nb.synthetic_nuclei((64, 64), n=5, seed=2)
    imwrite(tmp_path / "img" / "a.tif", image)
    imwrite(tmp_path / "lab" / "a.tif", labels)
    return tmp_path / "img", tmp_path / "lab"


def _train(tmp_path, pairs, *extra):
    """``napari-binseg train`` in its own process, as a user runs it: (exit code, stderr)."""
    import subprocess
    import sys

    args = ["train", "--images", str(pairs[0]), "--labels", str(pairs[1]), "--out",
            str(tmp_path / "m"), "--epochs", "1", "--steps-per-epoch", "1", "--device", "cpu",
            "--patch-size", "32", *extra]  # fmt: skip
    run = subprocess.run(
        [sys.executable, "-m", "napari_binseg.cli", *args], capture_output=True, text=True
    )
    return run.returncode, run.stderr


def test_train_with_a_garbage_checkpoint_exits_2(tmp_path, pairs):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "checkpoint.safetensors").write_bytes(b"\x00garbage" * 10)
    (ckpt / "checkpoint.json").write_text("{}")
    rc, err = _train(tmp_path, pairs, "--resume", str(ckpt))
    assert rc == 2 and err.count("\n") == 1 and "resume" in err, err
    rc, err = _train(tmp_path, pairs, "--resume", str(tmp_path / "nothing"))
    assert rc == 2 and "does not exist" in err, err


@pytest.mark.parametrize("shape", [(1, 1), (1, 40)])
def test_train_on_tiny_images_exits_2(tmp_path, shape):
    imwrite(tmp_path / "img" / "a.tif", np.ones(shape, np.uint8))
    imwrite(tmp_path / "lab" / "a.tif", np.ones(shape, np.uint16))
    rc, err = _train(tmp_path, (tmp_path / "img", tmp_path / "lab"))
    assert rc == 2 and err.count("\n") == 1 and "a.tif" in err, err


def test_train_on_a_truncated_image_exits_2(tmp_path, pairs):
    data = (pairs[0] / "a.tif").read_bytes()
    (pairs[0] / "a.tif").write_bytes(data[: len(data) // 2])
    rc, err = _train(tmp_path, pairs)
    # tifffile may log a warning line first; the error itself is one line
    last = err.strip().splitlines()[-1]
    assert rc == 2 and last.startswith("napari-binseg train: error:") and "truncated" in last
    assert "Traceback" not in err


def test_settings_objects_refuse_runaway_values():
    for bad in ({"threshold": {"sigma": 1e5}}, {"unet": {"batch_size": 0}}):
        with pytest.raises(ValueError, match=r"\w+\.\w+ (\(.*\) )?must be"):
            PipelineSettings.from_dict(bad)


@pytest.mark.parametrize("dtype", [">u2", ">i4"])
def test_big_endian_labels_count_and_measure_like_native(cells, dtype):
    labels, table = nb.count_cells(nb.threshold(cells), cells)
    swapped = labels.astype(dtype)
    measured = nb.measure_objects(swapped, cells.astype(">f4"))
    np.testing.assert_allclose(
        measured["mean_intensity"], nb.measure_objects(labels, cells)["mean_intensity"]
    )
    again, _ = nb.count_cells(swapped, cells.astype(">u2"))
    np.testing.assert_array_equal(again, nb.count_cells(labels, cells)[0])
    assert nb.evaluate(swapped, labels)["f1"].iloc[0] == 1.0
