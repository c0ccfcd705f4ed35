"""The pipeline API, its chunked (dask) path, settings JSON and ``napari-binseg segment``."""

import json

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import napari_binseg as nb
from napari_binseg.cli import main
from napari_binseg.io import imread, imwrite, read_zarr, write_zarr
from napari_binseg.measure import unit_columns
from napari_binseg.pipeline import CountSettings, PipelineSettings, run_pipeline

NO_SPLIT = {"split_touching": False, "fill_holes": False}


def mapping(a, b):
    """The label of ``b`` for each label of ``a``; fails unless one-to-one on the same pixels."""
    assert a.shape == b.shape
    assert np.array_equal(a > 0, b > 0)
    pairs = np.unique(np.stack([a.ravel(), b.ravel()]), axis=1)
    pairs = pairs[:, pairs[0] > 0]
    assert len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    return dict(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))


def assert_same_objects(labels_a, table_a, labels_b, table_b):
    """Equal labels up to numbering, and the same table rows for the same objects."""
    to_b = mapping(np.asarray(labels_a), np.asarray(labels_b))
    assert len(table_a) == len(table_b) == len(to_b)
    assert list(table_a.columns) == list(table_b.columns)
    b = table_b.set_index("label").loc[[to_b[v] for v in table_a["label"]]].reset_index()
    b["label"] = table_a["label"].to_numpy()
    pd.testing.assert_frame_equal(table_a, b, check_dtype=False, rtol=1e-9)


@pytest.fixture(scope="module")
def stack():
    """A (16, 48, 56) uint16 volume of 20 synthetic nuclei, many crossing chunk borders."""
    return nb.synthetic_nuclei((16, 48, 56), n=20, radius=3.0, seed=0)[0]


@pytest.fixture(scope="module")
def series():
    """A (6, 48, 56) time series: 9 synthetic nuclei per frame."""
    return np.stack([nb.synthetic_nuclei((48, 56), n=9, radius=4.0, seed=s)[0] for s in range(6)])


# ----------------------------------------------------------------------------- settings


def test_settings_json_round_trip(tmp_path):
    s = PipelineSettings(
        "manual", threshold={"value": 120.5, "scope": "slice"}, count={"min_size": 3.5}
    )
    path = tmp_path / "s.json"
    s.to_json(path)
    assert json.loads(path.read_text())["threshold"]["value"] == 120.5
    back = PipelineSettings.from_json(path)
    assert back == s and back.count == CountSettings(min_size=3.5)
    assert PipelineSettings.from_json(s.to_json()) == s
    for diameter in ("auto", None, 12.5):
        u = PipelineSettings("unet", unet={"diameter": diameter})
        assert PipelineSettings.from_json(u.to_json()).unet.diameter == diameter


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"method": "watershed"}, "method must be one of"),
        ({"method": "manual"}, "needs threshold.value"),
        ({"count": {"min_sise": 3}}, "unknown setting count.min_sise"),
        ({"count": {"max_size": 1, "min_size": 5}}, "count.max_size must be >= 5"),
        ({"threshold": {"sigma": -1}}, r"threshold.sigma \('auto' or px\) must be >= 0"),
        ({"unet": {"prob_threshold": 1.0}}, "unet.prob_threshold must be < 1"),
        ({"unet": {"diameter": "big"}}, "unet.diameter .* must be a number"),
        ({"unet": {"diameter": 0}}, "unet.diameter .* must be > 0"),
        ({"count": {"fill_holes": "yes"}}, "count.fill_holes must be true or false"),
        ({"version": 7}, "version 7 is not supported"),
    ],
)
def test_settings_are_validated(data, message):
    with pytest.raises(ValueError, match=message):
        PipelineSettings.from_dict(data)


def test_bad_settings_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json is not valid JSON"):
        PipelineSettings.from_json(path)


# ------------------------------------------------------------------------- numpy vs dask


def test_in_memory_pipeline_is_threshold_then_count(stack):
    s = PipelineSettings("li", threshold={"sigma": 1.0}, count={"min_size": 5})
    labels, table = run_pipeline(stack, s, spacing=(2.0, 0.5, 0.5))
    mask = nb.threshold(stack, "li", sigma=1.0)
    ref, ref_table = nb.count_cells(mask, stack, spacing=(2.0, 0.5, 0.5), min_size=5)
    np.testing.assert_array_equal(labels, ref)
    pd.testing.assert_frame_equal(table, ref_table)


@pytest.mark.parametrize(
    ("chunks", "connectivity"),
    [((5, 17, 13), 1), ((5, 17, 13), 2), ((5, 17, 13), 3), ((16, 48, 56), 3), ((3, 9, 40), 3)],
)
def test_dask_labels_and_table_equal_numpy(stack, chunks, connectivity):
    s = PipelineSettings(
        "otsu",
        count={"connectivity": connectivity, "min_size": 2.0, "exclude_border": True} | NO_SPLIT,
    )
    ref, ref_table = run_pipeline(stack, s, spacing=(2.0, 0.5, 0.5))
    labels, table = run_pipeline(da.from_array(stack, chunks=chunks), s, spacing=(2.0, 0.5, 0.5))
    assert isinstance(labels, da.Array)
    assert len(ref_table) >= 9
    assert labels.dtype == ref.dtype == np.uint16  # the chunked path was int32
    assert_same_objects(ref, ref_table, labels.compute(), table)


def test_dask_labels_of_65536_objects_are_uint32_as_in_memory():
    image = np.zeros((512, 512), np.uint16)
    image[::2, ::2] = 1000  # 256 x 256 single pixels, apart at every connectivity
    s = PipelineSettings("otsu", count=NO_SPLIT | {"min_size": 0.0})
    ref = run_pipeline(image, s)[0]
    labels = run_pipeline(da.from_array(image, chunks=200), s)[0]
    assert labels.dtype == ref.dtype == np.uint32
    labels = labels.compute()
    assert labels.dtype == np.uint32 and labels[510, 510] == ref[510, 510] == 65536
    np.testing.assert_array_equal(labels, ref)


@pytest.mark.parametrize(
    ("shape", "chunks", "spacing"),
    [((16, 48, 56), (5, 17, 13), (2.0, 0.5, 0.5)), ((96, 112), (25, 30), (0.5, 0.5))],
)
def test_chunked_automatic_min_size_is_the_in_memory_one(shape, chunks, spacing):
    """Bright specks (a voxel each) in the background: the in-memory count drops them (the
    automatic min_size is a tenth of a nucleus); the chunked run measures the nucleus on a
    few chunks and drops them too, where it used to keep every speck (min_size 0)."""
    image = nb.synthetic_nuclei(shape, n=20 if len(shape) == 3 else 12, radius=3.0, seed=0)[0]
    rng = np.random.default_rng(1)
    background = np.argwhere(image < np.percentile(image, 30))
    for p in background[rng.choice(len(background), 6, replace=False)]:
        image[tuple(p)] = image.max()
    s = PipelineSettings("otsu", count=NO_SPLIT)
    ref, ref_table = run_pipeline(image, s, spacing=spacing)
    labels, table = run_pipeline(da.from_array(image, chunks=chunks), s, spacing=spacing)
    assert_same_objects(ref, ref_table, labels.compute(), table)
    every = PipelineSettings("otsu", count=NO_SPLIT | {"min_size": 0.0})
    assert len(run_pipeline(image, every, spacing=spacing)[1]) == len(table) + 6
    # A few chunks' objects, not all: about the same nucleus size.
    assert table.attrs["diameter"] == pytest.approx(ref_table.attrs["diameter"], rel=0.1)
    assert table.attrs["diameter_px"] == table.attrs["diameter"] / spacing[-1]
    assert table.attrs["min_size"] == pytest.approx(ref_table.attrs["min_size"], rel=0.2)
    given = PipelineSettings("otsu", count=NO_SPLIT | {"diameter": 100.0})
    _, huge = run_pipeline(da.from_array(image, chunks=chunks), given, spacing=spacing)
    assert huge.attrs["diameter"] == 100.0 and len(huge) < len(table)  # the given size rules


def test_pipeline_table_says_where_the_threshold_ignored_bright_debris():
    nuclei = nb.synthetic_nuclei((128, 128), n=12, radius=6, seed=0)[0]
    image = (nuclei / nuclei.max() * 60).astype(np.uint8)
    image[2:6, 2:6] = image[120:124, 60:64] = 255
    s = PipelineSettings("otsu", count=NO_SPLIT)
    for data in (image, da.from_array(image, chunks=64)):
        note = run_pipeline(data, s)[1].attrs["bright_outliers"]
        assert note == {"image": {"first_threshold": 60.0, "pixels": 32, "fraction": 32 / 128**2}}
    off = PipelineSettings("otsu", threshold={"ignore_bright_outliers": False}, count=NO_SPLIT)
    assert run_pipeline(image, off)[1].attrs["bright_outliers"] == {}


def test_dask_time_series_counts_per_frame(series):
    s = PipelineSettings("otsu", count={"time_axis": 0, "exclude_border": True} | NO_SPLIT)
    ref, ref_table = run_pipeline(series, s)
    labels, table = run_pipeline(da.from_array(series, chunks=(4, 20, 30)), s)
    labels = labels.compute()
    assert_same_objects(ref, ref_table, labels, table)
    counts = nb.count_summary(table)["count"].tolist()
    assert counts == nb.count_summary(ref_table)["count"].tolist() and sum(counts) == 26
    # frames never connect: every frame holds exactly its counted objects
    assert [len(np.unique(f[f > 0])) for f in labels] == counts


def test_dask_time_series_sizes_each_frame_as_in_memory():
    """Frame 0 holds big nuclei (radius 12), frame 1 small ones (radius 3): one diameter for
    both (the big one, size-weighted) set a minimum size above every small nucleus."""
    big = nb.synthetic_nuclei((128, 128), n=8, radius=12, seed=0)[0]
    small = nb.synthetic_nuclei((128, 128), n=30, radius=3, seed=1)[0]
    series = np.stack([big, small])
    s = PipelineSettings("otsu", threshold={"scope": "slice"}, count={"time_axis": 0} | NO_SPLIT)
    ref, ref_table = run_pipeline(series, s)
    labels, table = run_pipeline(da.from_array(series, chunks=(1, 64, 64)), s)
    counts = nb.count_summary(table)["count"].tolist()
    assert counts == nb.count_summary(ref_table)["count"].tolist() and counts[1] >= 20
    assert_same_objects(ref, ref_table, labels.compute(), table)
    got, expected = table.attrs["frame_diameters"], ref_table.attrs["frame_diameters"]
    assert got == pytest.approx(expected, rel=0.15) and got[0] > 2.5 * got[1]


def test_chunked_run_refuses_whole_image_options(stack):
    with pytest.raises(ValueError, match="split_touching and count.fill_holes need whole"):
        run_pipeline(da.from_array(stack, chunks=3), PipelineSettings())


def test_distributed_cluster_gives_the_same_labels(stack):
    import distributed

    s = PipelineSettings("otsu", count=NO_SPLIT)
    ref, ref_table = run_pipeline(stack, s)
    with (
        distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cluster,
        distributed.Client(cluster),
    ):
        labels, table = run_pipeline(da.from_array(stack, chunks=(3, 24, 28)), s)
        labels = labels.compute()
    assert_same_objects(ref, ref_table, labels, table)


# -------------------------------------------------------------------------------- zarr


def test_zarr_round_trip_keeps_pixel_size(tmp_path, stack):
    write_zarr(tmp_path / "s.zarr", da.from_array(stack, chunks=(2, 16, 16)), scale=(2, 0.5, 0.5),
               units="um", labels=True)  # fmt: skip
    data, meta = read_zarr(tmp_path / "s.zarr")
    np.testing.assert_array_equal(data.compute(), stack)
    assert meta["scale"] == (2.0, 0.5, 0.5) and meta["units"] == ("µm",) * 3
    assert meta["axes"] == "ZYX" and meta["is_labels"] and meta["name"] == "s"


def test_zarr_store_name_matches_the_command_s_name(tmp_path, stack):
    from napari_binseg.io import source_name

    write_zarr(tmp_path / "Upper.ZARR", da.from_array(stack, chunks=(2, 16, 16)))
    assert read_zarr(tmp_path / "Upper.ZARR")[1]["name"] == source_name(tmp_path / "Upper.ZARR")
    assert source_name(tmp_path / "Upper.ZARR") == "Upper"


def test_segment_file_refuses_the_unet_above_the_memory_limit(tmp_path, stack):
    from napari_binseg.pipeline import segment_file

    imwrite(tmp_path / "big.tif", stack)
    with pytest.raises(ValueError, match="big: 0 MB is above the in-memory limit .* U-Net"):
        segment_file(
            tmp_path / "big.tif", tmp_path / "out", PipelineSettings("unet"), max_memory=1
        )
    assert not (tmp_path / "out" / "big_labels.tif").exists()


# ------------------------------------------------------------------------------ command


@pytest.fixture
def folder(tmp_path, stack):
    """Two TIFFs, one zarr store and one corrupt file."""
    src = tmp_path / "in"
    imwrite(src / "plane.tif", stack[0], scale=(0.5, 0.5))
    imwrite(src / "stack.tif", stack, scale=(2.0, 0.5, 0.5))
    write_zarr(src / "store.zarr", da.from_array(stack, chunks=(2, 24, 24)), scale=(2, 0.5, 0.5),
               units="um")  # fmt: skip
    (src / "broken.tif").write_bytes(b"this is not a TIFF file")
    return src


def test_cli_folder_with_a_corrupt_file(folder, tmp_path, stack, capsys):
    out = tmp_path / "out"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    rc = main(["segment", str(folder), "--out", str(out), "--method", "otsu", "--min-size", "2"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "broken.tif: error:" in err and "not a readable TIFF" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "counts.csv", "objects.csv", "params.json", "per_file", "plane_labels.tif",
        "stack_labels.tif", "store_labels.tif",
    ]  # fmt: skip
    assert not list(out.glob("broken*")) and not list(out.rglob(".partial-*"))
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before

    settings = PipelineSettings("otsu", count={"min_size": 2.0})
    ref, ref_table = run_pipeline(stack, settings, spacing=(2.0, 0.5, 0.5))
    labels, meta = imread(out / "stack_labels.tif")
    np.testing.assert_array_equal(labels, ref)
    assert meta["scale"] == (2.0, 0.5, 0.5) and meta["is_labels"]
    np.testing.assert_array_equal(imread(out / "store_labels.tif")[0], ref)
    plane_ref, plane_table = run_pipeline(stack[0], settings, spacing=(0.5, 0.5))
    np.testing.assert_array_equal(imread(out / "plane_labels.tif")[0], plane_ref)

    objects = pd.read_csv(out / "objects.csv")
    ref_csv = unit_columns(ref_table, "µm")  # the files' pixel size is in µm
    assert {"volume_um3", "area_um2", "centroid_x_um", "bbox_min_x_px"} <= set(objects.columns)
    stack_rows = objects[objects["file"] == "stack.tif"][ref_csv.columns]
    pd.testing.assert_frame_equal(stack_rows.reset_index(drop=True), ref_csv,
                                  check_dtype=False)  # fmt: skip
    counts = pd.read_csv(out / "counts.csv")
    assert counts.to_dict("list") == {
        "file": ["plane.tif", "stack.tif", "store.zarr"],
        "frame": [0, 0, 0],
        "count": [len(plane_table), len(ref_table), len(ref_table)],
    }
    params = json.loads((out / "params.json").read_text())
    assert PipelineSettings.from_dict(params["settings"]) == settings
    assert len(params["inputs"]) == 4
    # params.json reruns the same settings
    again = tmp_path / "again"
    rc = main(["segment", str(folder / "stack.tif"), "--out", str(again), "--settings",
               str(out / "params.json"), "-q"])  # fmt: skip
    assert rc == 0
    np.testing.assert_array_equal(imread(again / "stack_labels.tif")[0], ref)


def test_cli_second_run_skips_finished_files(folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["segment", str(folder / "*.tif"), "--out", str(out), "-q"]
    assert main(args) == 1
    stamp = (out / "stack_labels.tif").stat().st_mtime_ns
    (folder / "broken.tif").unlink()
    assert main(args) == 0
    assert "(2 already done)" in capsys.readouterr().out
    assert (out / "stack_labels.tif").stat().st_mtime_ns == stamp
    assert sorted(pd.read_csv(out / "counts.csv")["file"]) == ["plane.tif", "stack.tif"]
    # other settings into the same folder would mix results: refused
    assert main([*args, "--min-size", "50"]) == 2
    assert "holds results of other settings" in capsys.readouterr().err


def test_cli_large_input_goes_through_chunks_to_zarr(folder, tmp_path, stack):
    out = tmp_path / "out"
    rc = main(["segment", str(folder / "stack.tif"), "--out", str(out), "--no-split",
               "--no-fill-holes", "--max-memory-mb", "0.01", "--chunk-mb", "0.004",
               "-q"])  # fmt: skip
    assert rc == 0
    labels, meta = read_zarr(out / "stack_labels.zarr")
    assert labels.npartitions > 4  # really chunked
    assert meta["scale"] == (2.0, 0.5, 0.5) and meta["is_labels"]
    ref, ref_table = run_pipeline(stack, PipelineSettings(count=NO_SPLIT), spacing=(2, 0.5, 0.5))
    table = pd.read_csv(out / "per_file" / "stack_objects.csv")
    assert_same_objects(ref, unit_columns(ref_table, "µm"), labels.compute(), table)


def test_cli_runs_chunks_on_a_scheduler_address(folder, tmp_path, stack):
    import distributed

    out = tmp_path / "out"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False) as cluster:
        before = cluster.scheduler.transition_counter
        rc = main(["segment", str(folder / "store.zarr"), "--out", str(out), "--no-split",
                   "--no-fill-holes", "--max-memory-mb", "0.01", "--chunk-mb", "0.004",
                   "--scheduler", cluster.scheduler_address, "-q"])  # fmt: skip
        assert rc == 0
        assert cluster.scheduler.transition_counter > before + 100  # the tasks ran there
    ref, _ = run_pipeline(stack, PipelineSettings(count=NO_SPLIT), spacing=(2, 0.5, 0.5))
    mapping(ref, read_zarr(out / "store_labels.zarr")[0].compute())


def test_cli_bad_arguments_are_one_line(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "nothing*.tif"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "s.json"
    bad.write_text('{"count": {"min_size": -1}}')
    imwrite(tmp_path / "a.tif", np.zeros((8, 8), np.uint8))
    assert main(["segment", str(tmp_path / "a.tif"), "--out", str(tmp_path / "o"),
                 "--settings", str(bad)]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "count.min_size must be >= 0" in err


@pytest.mark.parametrize(
    ("given", "expected"),
    [([], "auto"), (["--diameter", "none"], None), (["--diameter", "12"], 12.0)],
)
def test_cli_diameter_option(given, expected):
    from napari_binseg.cli import _settings_from_args, build_parser

    args = build_parser().parse_args(
        ["segment", "x.tif", "--out", "o", "--method", "unet", *given]
    )
    assert _settings_from_args(args).unet.diameter == expected


def test_cli_bad_diameter_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", str(tmp_path), "--out", str(tmp_path), "--diameter", "big"])
    assert exit_info.value.code == 2
    assert "expected auto, none or pixels, got 'big'" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_unet_equals_segment(tmp_path):
    image = nb.synthetic_nuclei((64, 64), n=6, seed=2)[0]
    imwrite(tmp_path / "in" / "tiny.tif", image)
    out = tmp_path / "out"
    args = ["segment", str(tmp_path / "in"), "--out", str(out), "--method", "unet",
            "--device", "cpu", "-q"]  # fmt: skip
    assert main(args) == 0
    ref = nb.segment(image, device="cpu")
    labels = imread(out / "tiny_labels.tif")[0]
    assert ref.max() > 0
    mapping(ref, labels)


def test_otsu_pipeline_and_command_never_load_torch(tmp_path, stack):
    import subprocess
    import sys

    imwrite(tmp_path / "in.tif", stack)
    code = (
        "import sys, numpy as np\n"
        "from napari_binseg.cli import main\n"
        "from napari_binseg.pipeline import PipelineSettings, run_pipeline\n"
        "from napari_binseg.io import imread\n"
        "image = imread(sys.argv[1])[0]; before = image.copy()\n"
        "run_pipeline(image, PipelineSettings('otsu'))\n"
        "assert np.array_equal(image, before)  # input untouched\n"
        "assert main(['segment', sys.argv[1], '--out', sys.argv[2], '-q']) == 0\n"
        "bad = [m for m in ('torch', 'monai', 'napari', 'qtpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "in.tif"), str(tmp_path / "out")], check=True
    )
    assert (tmp_path / "out" / "in_labels.tif").is_file()


def test_axes_decide_what_a_stack_is(series):
    s = PipelineSettings("otsu", count=NO_SPLIT | {"min_size": 0.0})
    as_time, table = run_pipeline(series, s, axes="TYX")
    per_frame = nb.count_summary(table)["count"].tolist()
    _, legacy = run_pipeline(series, s.replace(count={"time_axis": 0}))
    assert per_frame == nb.count_summary(legacy)["count"].tolist() and len(per_frame) == 6
    _, volume = run_pipeline(series, s)  # an unlabeled 3D array is a z-stack
    assert "frame" not in volume
    four_d = np.stack([series[:3], series[3:]])  # (T, Z, Y, X) by default
    _, table = run_pipeline(four_d, s)
    assert nb.count_summary(table)["frame"].tolist() == [0, 1]
    _, same = run_pipeline(series, PipelineSettings("otsu", count=s.count, axes="TYX"))
    assert nb.count_summary(same)["count"].tolist() == per_frame
    with pytest.raises(ValueError, match="count.time_axis 1 contradicts axes 'TYX'"):
        run_pipeline(series, s.replace(count={"time_axis": 1}), axes="TYX")
    with pytest.raises(ValueError, match="axes 'TZYX' names 4 dimensions, the image has 3"):
        run_pipeline(series, s, axes="TZYX")


def test_pipeline_table_says_what_smoothing_ran():
    from .test_threshold_noise import noisy_nuclei

    image = noisy_nuclei((128, 128), n=4)[0]
    s = PipelineSettings("otsu", count=NO_SPLIT)
    for data in (image, da.from_array(image, chunks=64)):
        attrs = run_pipeline(data, s)[1].attrs
        assert attrs["threshold_sigma"] == 2.0 and attrs["noise_ratio"] > 0.709
    fixed = run_pipeline(image, s.replace(threshold={"sigma": 1.0}))[1].attrs
    assert (fixed["threshold_sigma"], fixed["noise_ratio"]) == (1.0, None)
    # Per frame ("auto" measures each alone): lists, one value a frame.
    from .test_threshold_noise import noisy_series

    series = noisy_series((96, 96), n=3)[0]
    per_frame = s.replace(threshold={"scope": "frame"})
    for data in (series, da.from_array(series, chunks=(2, 96, 96))):
        attrs = run_pipeline(data, per_frame, axes="TYX")[1].attrs
        assert attrs["threshold_sigma"] == [0.0] * 6 + [2.0, 2.0]
        assert len(attrs["noise_ratio"]) == 8 and min(attrs["noise_ratio"][6:]) > 0.709


def test_smoothing_note_names_the_smoothed_frames_and_planes():
    """Per frame / plane the note says which were smoothed (the first 4): the frames a
    biologist should look at (before: only how many)."""
    from napari_binseg.pipeline import smoothing_note

    note = smoothing_note([0.0] * 6 + [2.0, 2.0], [0.05] * 6 + [1.05, 0.97], "frame")
    assert note == "smoothed 2 of 8 frames with sigma 2 px (noise ratio 0.97-1.05): frames 6, 7"
    sigma, ratio = np.array([[0, 1.0], [4.0, 0]]), np.array([[0.1, 0.3], [1.6, 0.1]])
    note = smoothing_note(sigma, ratio, "slice")
    assert note == (
        "smoothed 2 of 4 planes with sigma 1-4 px (noise ratio 0.30-1.60): planes (0, 1), (1, 0)"
    )
    assert smoothing_note([2.0] * 5, [1.0] * 5, "slice").endswith(": planes 0, 1, 2, 3 ...")
    assert smoothing_note([0.0, 0.0], [0.1, 0.1], "frame") == ""


def test_pipeline_table_says_what_background_subtraction_ran():
    flat, truth = nb.synthetic_nuclei((256, 256), n=20, seed=1)
    contrast = float(np.median(flat[truth > 0]) - np.median(flat[truth == 0]))
    ramp = np.clip(flat + contrast * np.mgrid[:256, :256][1] / 256, 0, 65535).astype(flat.dtype)
    s = PipelineSettings("otsu", threshold={"background": "uneven"}, count=NO_SPLIT)
    for data in (ramp, da.from_array(ramp, chunks=128)):  # dask: subtracted lazily, same
        attrs = run_pipeline(data, s)[1].attrs
        assert attrs["threshold_background"] == pytest.approx(25.2, abs=0.1)
        assert attrs["unevenness"] > 0.8
    attrs = run_pipeline(flat, s)[1].attrs
    assert attrs["threshold_background"] is None and attrs["unevenness"] < 0.1
    fixed = run_pipeline(flat, s.replace(threshold={"background": 30.0}))[1].attrs
    assert (fixed["threshold_background"], fixed["unevenness"]) == (30.0, None)
