"""Batches of files (``napari_binseg.batch``): locking, inputs, memory switch, axes, damage."""

import json
import re

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import napari_binseg as nb
from napari_binseg.batch import (
    chunk_limit,
    find_inputs,
    output_lock,
    peak_bytes,
    segment_file,
    segment_files,
)
from napari_binseg.cli import main
from napari_binseg.io import imread, imwrite, read_zarr, write_zarr
from napari_binseg.options import BatchOptions
from napari_binseg.settings import PipelineSettings

NO_SPLIT = {"split_touching": False, "fill_holes": False}


@pytest.fixture
def folder(tmp_path):
    """Two synthetic 2D images."""
    src = tmp_path / "in"
    for seed in (1, 2):
        imwrite(src / f"cells{seed}.tif", nb.synthetic_nuclei((48, 48), n=5, seed=seed)[0])
    return src


def test_second_run_into_a_locked_folder_exits_2(folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with output_lock(out):
        assert main(["segment", str(folder), "--out", str(out), "-q"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "in use by another napari-binseg segment run" in err
        assert not (out / "params.json").exists()
    assert main(["segment", str(folder), "--out", str(out), "-q"]) == 0  # released
    assert not list(out.glob(".napari-binseg.lock"))


def test_lock_is_released_on_error_and_refuses_a_second_holder(tmp_path):
    with pytest.raises(RuntimeError), output_lock(tmp_path):
        raise RuntimeError("boom")
    with output_lock(tmp_path), pytest.raises(ValueError, match="in use"):
        with output_lock(tmp_path):
            pass


def test_output_inside_the_input_folder_is_never_an_input(folder, capsys):
    out = folder / "results"
    args = ["segment", str(folder), "--out", str(out), "-q"]
    assert main(args) == 0
    (folder / "old_labels.tif").write_bytes((out / "cells1_labels.tif").read_bytes())
    assert main([*args, "--overwrite"]) == 0
    assert "segmented 2 of 2 files" in capsys.readouterr().out
    assert sorted(p.name for p in find_inputs([folder / "*"], out=out)) == [
        "cells1.tif",
        "cells2.tif",
    ]
    assert [p.name for p in find_inputs(str(folder / "cells1.tif"))] == ["cells1.tif"]
    # named on its own, a file is an input whatever its name
    assert find_inputs([folder / "old_labels.tif"], out=out)[0].name == "old_labels.tif"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--method", "unet", "--model", "no/such/model"], "neither a bundled model"),
        (["--method", "unet", "--device", "cuda"], "CUDA is not available"),
        (["--chunk-mb", "0"], "batch.chunk_mb must be > 0"),
        (["--max-memory-mb", "-1"], "batch.max_memory_mb must be > 0"),
        (["--sigma", "1e5"], "threshold.sigma ('auto' or px) must be <= 100"),
        (["--tile-size", "8"], "unet.tile_size must be an integer >= 32"),
    ],
)
def test_bad_model_device_or_range_exit_2_before_any_file(
    folder, tmp_path, capsys, flags, message
):
    import torch

    if "cuda" in flags and torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--out", str(out), "-q", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def test_out_naming_a_file_exits_2(folder, tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert main(["segment", str(folder), "--out", str(tmp_path / "taken"), "-q"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == "x"


def test_a_missing_zarr_chunk_fails_that_file_only(folder, tmp_path, capsys):
    image = nb.synthetic_nuclei((64, 64), n=6, seed=3)[0]
    store = write_zarr(folder / "store.zarr", da.from_array(image, chunks=32))
    chunks = sorted(p for p in store.rglob("*") if p.is_file() and p.parent.name.isdigit())
    assert len(chunks) == 4  # every chunk stored, even empty ones
    chunks[-1].unlink()
    out = tmp_path / "out"
    assert main(["segment", str(folder), "--out", str(out), "-q"]) == 1
    captured = capsys.readouterr()
    assert "store.zarr: error:" in captured.err and "missing 1 of its 4 chunks" in captured.err
    assert "segmented 2 of 3 files" in captured.out
    assert sorted(pd.read_csv(out / "counts.csv")["file"]) == ["cells1.tif", "cells2.tif"]


def test_the_peak_estimate_follows_what_is_counted_at_once():
    """Measured per pixel (batch.py): a z-stack with splitting needs about 2x an image's working
    memory; a time series pays its whole labels and one frame's work."""
    split = PipelineSettings("otsu")
    mpx = 1_000_000
    assert peak_bytes((1000, 1000), np.uint16, split) == mpx * (2 + 12)
    assert peak_bytes((10, 1000, 1000), np.uint16, split) == 10 * mpx * (2 + 26)
    assert peak_bytes((10, 1000, 1000), np.uint16, split, time_axis=0) == 10 * mpx * 14 + mpx * 12
    stack = peak_bytes((10, 4, 1000, 1000), np.uint8, split, time_axis=0)
    assert stack == 40 * mpx * (1 + 12) + 4 * mpx * 26
    plain = PipelineSettings("otsu", count=NO_SPLIT)
    assert peak_bytes((10, 1000, 1000), np.uint16, plain) == 10 * mpx * (2 + 20)


def test_the_memory_limit_bounds_the_estimated_peak(tmp_path):
    image = nb.synthetic_nuclei((64, 64), n=6, seed=4)[0]
    imwrite(tmp_path / "img.tif", image)
    settings = PipelineSettings("otsu", count=NO_SPLIT)
    peak = peak_bytes(image.shape, image.dtype, settings)
    assert peak == 7 * image.nbytes  # the input and 12 bytes per pixel of working arrays
    assert peak_bytes(image.shape, image.dtype, PipelineSettings("unet")) > peak
    # the input fits the limit, its peak does not: chunks, to zarr
    segment_file(tmp_path / "img.tif", tmp_path / "a", settings, max_memory=peak - 1,
                 chunk_bytes=2048)  # fmt: skip
    assert (tmp_path / "a" / "img_labels.zarr").is_dir()
    segment_file(tmp_path / "img.tif", tmp_path / "b", settings, max_memory=peak)
    assert (tmp_path / "b" / "img_labels.tif").is_file()
    # the chunked run finds the same objects, up to their numbering
    chunked = np.asarray(read_zarr(tmp_path / "a" / "img_labels.zarr")[0])
    whole = imread(tmp_path / "b" / "img_labels.tif")[0]
    pairs = np.unique(np.stack([chunked.ravel(), whole.ravel()]), axis=1)
    assert whole.max() > 1 and chunked.max() == whole.max() == pairs.shape[1] - 1
    np.testing.assert_array_equal(chunked > 0, whole > 0)
    split = PipelineSettings()
    with pytest.raises(ValueError, match="raise --max-memory-mb, or set both off"):
        segment_file(tmp_path / "img.tif", tmp_path / "c", split, max_memory=peak - 1)


def test_axes_come_from_the_file_or_the_command(tmp_path, capsys):
    frames = np.stack([nb.synthetic_nuclei((48, 48), n=4 + t, seed=t)[0] for t in range(3)])
    imwrite(tmp_path / "in" / "movie.tif", frames, axes="TYX")
    imwrite(tmp_path / "plain" / "stack.tif", frames)  # no axes: a z-stack
    settings = PipelineSettings("otsu", count=NO_SPLIT | {"min_size": 0.0})
    _, counts = segment_file(tmp_path / "in" / "movie.tif", tmp_path / "o1", settings)
    assert counts["frame"].tolist() == [0, 1, 2]
    _, counts = segment_file(tmp_path / "plain" / "stack.tif", tmp_path / "o2", settings)
    assert len(counts) == 1  # one 3D volume
    args = ["segment", str(tmp_path / "plain"), "--out", str(tmp_path / "o3"), "-q",
            "--no-split", "--no-fill-holes", "--min-size", "0", "--axes", "tyx"]  # fmt: skip
    assert main(args) == 0
    assert pd.read_csv(tmp_path / "o3" / "counts.csv")["frame"].tolist() == [0, 1, 2]
    params = json.loads((tmp_path / "o3" / "params.json").read_text())
    assert params["settings"]["axes"] == "TYX"
    assert main([*args[:-2], "--spacing", "2,0.5,0.5", "--out", str(tmp_path / "o4")]) == 0
    objects = pd.read_csv(tmp_path / "o4" / "objects.csv")
    labels = imread(tmp_path / "o4" / "stack_labels.tif")[0]
    assert objects["volume_um3"].sum() == pytest.approx(0.5 * (labels > 0).sum())


def test_segment_files_from_python_reports_per_file(folder, tmp_path):
    (folder / "broken.tif").write_bytes(b"not a tiff")
    result = segment_files([folder], tmp_path / "out", PipelineSettings(),
                           batch=BatchOptions(max_memory_mb=512))  # fmt: skip
    assert [p.name for p in result.done] == ["cells1.tif", "cells2.tif"]
    assert [(p.name, "not a readable TIFF" in m) for p, m in result.failed] == [
        ("broken.tif", True)
    ]
    assert set(result.diameters) == set(result.done)
    again = segment_files([folder], tmp_path / "out", PipelineSettings())
    assert [p.name for p in again.skipped] == ["cells1.tif", "cells2.tif"]
    with pytest.raises(ValueError, match="holds results of other settings"):
        segment_files([folder], tmp_path / "out", PipelineSettings("li"))


def test_the_command_prints_the_estimated_diameter(folder, tmp_path, capsys):
    assert main(["segment", str(folder), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "out" / "per_file" / "cells1_objects.csv")
    assert len(table) > 0
    assert "cells1.tif: nucleus diameter" in out and "(estimated)" in out
    args = ["segment", str(folder), "--out", str(tmp_path / "given"), "--diameter", "12"]
    assert main(args) == 0
    assert "cells1.tif: nucleus diameter 12.0 px (given)" in capsys.readouterr().out


def test_diameter_flag_is_in_pixels_on_calibrated_files(tmp_path, capsys):
    """--diameter is pixels for the count too: a calibrated copy of an image (0.25 um/px)
    keeps every nucleus (the count's minimum size follows 16 px = 4 um, not 16 um)."""
    image = nb.synthetic_nuclei((96, 96), n=8, radius=8, seed=3)[0]
    imwrite(tmp_path / "px" / "cells.tif", image)
    imwrite(tmp_path / "um" / "cells.tif", image, scale=(0.25, 0.25), units="µm")
    flags = ["--method", "otsu", "--no-split", "--diameter", "16"]
    for name in ("px", "um"):
        assert main(["segment", str(tmp_path / name), "--out", str(tmp_path / f"o{name}"),
                     *flags]) == 0  # fmt: skip
    px = pd.read_csv(tmp_path / "opx" / "objects.csv")
    um = pd.read_csv(tmp_path / "oum" / "objects.csv")
    assert len(px) >= 6 and len(um) == len(px)
    np.testing.assert_allclose(um["area_um2"], px["area_px2"] * 0.0625)
    assert "cells.tif: nucleus diameter 4.0 µm = 16.0 px (given)" in capsys.readouterr().out
    params = tmp_path / "oum" / "params.json"
    assert json.loads(params.read_text())["diameter_px"] == 16
    out = str(tmp_path / "oum")
    um_in = str(tmp_path / "um")
    assert main(["segment", um_in, "--out", out, "-q", "--settings", str(params)]) == 0
    assert main(["segment", um_in, "--out", out, "-q", *flags[:-1], "8"]) == 2
    assert "holds results of other settings" in capsys.readouterr().err
    with pytest.raises(ValueError, match="diameter_px must be > 0"):
        segment_files([um_in], tmp_path / "o0", diameter_px=-16.0)


def test_chunks_processed_at_once_stay_under_the_limit():
    mb = 2**20
    assert chunk_limit(64 * mb, 1024 * mb, np.uint16, threads=1) == 64 * mb
    small = chunk_limit(64 * mb, 1024 * mb, np.uint16, threads=16)
    assert small * 16 * (2 + 20) / 2 <= 1024 * mb < 64 * mb * 16 * 11
    assert chunk_limit(64 * mb, 1, np.uint8, threads=4) == 4096  # never absurdly small


def test_objects_csv_names_sizes_with_their_units(folder, tmp_path, capsys):
    """NAME_objects.csv and objects.csv carry units in their column names, as the Count
    widget's CSV does: pixels for an uncalibrated file, the file's unit for a calibrated one."""
    settings = PipelineSettings("otsu", count=NO_SPLIT)
    segment_file(folder / "cells1.tif", tmp_path / "px", settings)
    px = pd.read_csv(tmp_path / "px" / "per_file" / "cells1_objects.csv")
    assert {"area_px2", "centroid_y_px", "equivalent_diameter_px", "bbox_min_y_px"} <= set(
        px.columns
    )
    image = nb.synthetic_nuclei((48, 48), n=5, seed=1)[0]
    imwrite(tmp_path / "um" / "cells.tif", image, scale=(0.5, 0.5), units="nm")
    assert main(["segment", str(tmp_path / "um"), "--out", str(tmp_path / "o"),
                 "--method", "otsu", "--no-split", "--no-fill-holes"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert re.search(r"cells.tif: nucleus diameter [\d.]+ nm = [\d.]+ px \(estimated\)", printed)
    nm = pd.read_csv(tmp_path / "o" / "objects.csv")
    assert list(nm.columns[:5]) == ["file", "label", "centroid_y_nm", "centroid_x_nm", "area_nm2"]
    np.testing.assert_allclose(nm["area_nm2"], px["area_px2"] * 0.25)


def _specks_image():
    """Dim nuclei (up to 60) and six saturated 4x4 specks: Otsu ignores the specks."""
    nuclei = nb.synthetic_nuclei((128, 128), n=12, radius=6, seed=0)[0]
    image = (nuclei / nuclei.max() * 60).astype(np.uint8)
    for y, x in [(2, 2), (2, 120), (120, 2), (120, 120), (60, 2), (2, 60)]:
        image[y : y + 4, x : x + 4] = 255
    return image


def test_the_command_says_where_the_threshold_ignored_bright_debris(folder, tmp_path, capsys):
    imwrite(folder / "specks.tif", _specks_image())
    assert main(["segment", str(folder), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "specks.tif: threshold ignored 96 bright pixels above 60: debris" in out
    assert "cells1.tif: threshold" not in out  # the rule did not fire there
    args = ["segment", str(folder / "specks.tif"), "--out", str(tmp_path / "off"),
            "--no-ignore-bright-outliers"]  # fmt: skip
    assert main(args) == 0
    assert "debris" not in capsys.readouterr().out


def test_params_record_the_models_threshold_that_ran(folder, tmp_path):
    """The U-Net's default threshold (the model's own) is written as the number that ran, so
    the folder resumes under that number and under the default alike."""
    out = tmp_path / "out"
    result = segment_files([folder], out, PipelineSettings("unet"))
    assert len(result.done) == 2
    params = json.loads((out / "params.json").read_text())
    assert params["settings"]["unet"]["prob_threshold"] == 0.5
    assert params["settings"]["unet"]["min_confidence"] == 0.85
    same = PipelineSettings("unet").replace(unet={"prob_threshold": 0.5})
    assert len(segment_files([folder], out, same).skipped) == 2
    assert len(segment_files([folder], out, PipelineSettings("unet")).skipped) == 2
    with pytest.raises(ValueError, match="holds results of other settings"):
        other = PipelineSettings("unet").replace(unet={"prob_threshold": 0.6})
        segment_files([folder], out, other)


@pytest.mark.parametrize("method", ["otsu", "unet"])
def test_a_folder_of_an_older_settings_version_resumes(folder, tmp_path, method):
    """An older params.json migrates the section its method does not use to values other
    than today's defaults (unet.prob_threshold 0.5 before version 4, threshold.
    ignore_bright_outliers off before 3); the results do not depend on them."""
    out = tmp_path / "out"
    assert len(segment_files([folder], out, PipelineSettings(method)).done) == 2
    params = json.loads((out / "params.json").read_text())
    old = params["settings"]
    old["unet"]["prob_threshold"] = 0.5  # what versions 1-3 wrote
    if method == "otsu":
        old["version"] = 3
    else:
        old["version"] = 2
        del old["threshold"]["ignore_bright_outliers"]
    (out / "params.json").write_text(json.dumps(params))
    assert len(segment_files([folder], out, PipelineSettings(method)).skipped) == 2


def test_params_record_the_sigma_auto_chose_per_file(tmp_path, capsys):
    from .test_threshold_noise import noisy_nuclei

    src, out = tmp_path / "in", tmp_path / "out"
    imwrite(src / "noisy.tif", noisy_nuclei((128, 128), n=4)[0])
    imwrite(src / "clean.tif", nb.synthetic_nuclei((128, 128), n=4, seed=1)[0])
    assert main(["segment", str(src), "--out", str(out), "--no-split"]) == 0
    printed = capsys.readouterr().out
    smoothed = r"noisy.tif: threshold smoothed with sigma 2 px \(noise ratio 0\.\d\d\)"
    assert re.search(smoothed, printed)
    assert "clean.tif: threshold smoothed" not in printed
    assert json.loads((out / "params.json").read_text())["threshold_sigma"] == {
        "clean.tif": 0.0,
        "noisy.tif": 2.0,
    }
    (out / "per_file" / "noisy_objects.csv").unlink()  # redo one: the other's record is kept
    assert main(["segment", str(src), "--out", str(out), "--no-split", "-q"]) == 0
    params = json.loads((out / "params.json").read_text())
    assert params["threshold_sigma"] == {"clean.tif": 0.0, "noisy.tif": 2.0}
    # A run that finds every file done keeps the record too (it rewrites params.json).
    assert main(["segment", str(src), "--out", str(out), "--no-split", "-q"]) == 0
    assert json.loads((out / "params.json").read_text()) == params
    # A folder of settings version 4 ran unsmoothed: it resumes under sigma 0, not under the
    # defaults, and the message names the option that differs.
    params["settings"] |= {"version": 4, "threshold": {"sigma": 0.0}}
    (out / "params.json").write_text(json.dumps(params))
    assert main(["segment", str(src), "--out", str(out), "--no-split", "-q", "--sigma", "0"]) == 0
    assert main(["segment", str(src), "--out", str(out), "--no-split", "-q"]) == 2
    err = capsys.readouterr().err
    assert "holds results of other settings (threshold.sigma 0.0 there, 'auto' now)" in err


def test_params_record_the_sigma_auto_chose_per_frame(tmp_path, capsys):
    """Scope "frame": each frame measured alone; params.json holds a sigma per frame and the
    note says which frames were smoothed."""
    from .test_threshold_noise import noisy_series

    src, out = tmp_path / "in", tmp_path / "out"
    imwrite(src / "movie.tif", noisy_series((96, 96), n=3)[0], axes="TYX")
    argv = ["segment", str(src), "--out", str(out), "--no-split", "--scope", "frame"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    note = r"movie.tif: threshold smoothed 2 of 8 frames with sigma 2 px \(noise ratio \S+\)"
    note += r": frames 6, 7\n"
    assert re.search(note, printed)
    sigmas = json.loads((out / "params.json").read_text())["threshold_sigma"]
    assert sigmas == {"movie.tif": [0.0] * 6 + [2.0, 2.0]}


def test_resume_refuses_a_folder_of_one_sigma_per_stack(tmp_path, capsys):
    """An earlier release smoothed a series with one pooled sigma (its noisy frames not at
    all); a resumed run smoothing each frame alone would mix the two rules silently."""
    from .test_threshold_noise import noisy_series

    src, out = tmp_path / "in", tmp_path / "out"
    imwrite(src / "a.tif", noisy_series((96, 96), n=3)[0], axes="TYX")
    argv = ["segment", str(src), "--out", str(out), "--no-split", "-q", "--scope", "frame"]
    assert main(argv) == 0
    params = json.loads((out / "params.json").read_text())
    assert params["threshold_sigma_per_unit"] is True
    imwrite(src / "b.tif", noisy_series((96, 96), n=3)[0], axes="TYX")
    assert main(argv) == 0  # this release's folder resumes
    assert (out / "b_labels.tif").is_file()
    del params["threshold_sigma_per_unit"]  # as the earlier release wrote it
    (out / "params.json").write_text(json.dumps(params))
    imwrite(src / "c.tif", noisy_series((96, 96), n=3)[0], axes="TYX")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "holds results of an earlier release, whose sigma 'auto' smoothed a stack" in err
    assert not (out / "c_labels.tif").exists()


def test_params_record_the_background_uneven_subtracted_per_file(tmp_path, capsys):
    src, out = tmp_path / "in", tmp_path / "out"
    flat, truth = nb.synthetic_nuclei((256, 256), n=20, seed=1)
    contrast = float(np.median(flat[truth > 0]) - np.median(flat[truth == 0]))
    ramp = np.clip(flat + contrast * np.mgrid[:256, :256][1] / 256, 0, 65535).astype(flat.dtype)
    imwrite(src / "flat.tif", flat)
    imwrite(src / "ramp.tif", ramp)
    args = ["segment", str(src), "--out", str(out), "--no-split", "--background", "uneven"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    line = r"ramp.tif: threshold background subtracted \(radius 25 px, unevenness 0\.8\d\)"
    assert re.search(line, printed) and "flat.tif: threshold background" not in printed
    recorded = json.loads((out / "params.json").read_text())["threshold_background"]
    assert recorded["flat.tif"] is None and recorded["ramp.tif"] == pytest.approx(25.2, abs=0.1)
    # A number or off records nothing per file (the settings say what ran).
    again = tmp_path / "again"
    assert main(["segment", str(src), "--out", str(again), "-q", "--background", "off"]) == 0
    assert "threshold_background" not in json.loads((again / "params.json").read_text())
