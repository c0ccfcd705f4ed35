"""napari_binseg.train: a tiny U-Net on synthetic nuclei (CPU, one thread), saving, loading,
resuming, MONAI bundle export, config and data checks, and ``napari-binseg train``."""

import json

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("monai")

import napari_binseg as nb  # noqa: E402
from napari_binseg.cli import main  # noqa: E402
from napari_binseg.unet.trainer import TrainConfig, annotated_planes  # noqa: E402

TINY = {
    "name": "UNet",
    "kwargs": {
        "spatial_dims": 2,
        "in_channels": 1,
        "out_channels": 2,
        "channels": [8, 16],
        "strides": [2],
        "num_res_units": 0,
    },
}
OPTIONS = dict(
    init=None,
    architecture=TINY,
    epochs=4,
    steps_per_epoch=5,
    lr=2e-2,
    patch_size=64,
    batch_size=2,
    device="cpu",
    threads=1,
    seed=0,
)


def scores(history):
    """History records without their wall-clock times."""
    return [{k: v for k, v in h.items() if k != "minutes"} for h in history]


@pytest.fixture(scope="module")
def pair():
    """A stack of two synthetic 2D images with 16 nuclei each and a third, unlabeled plane."""
    (a, la), (b, lb) = (nb.synthetic_nuclei((96, 96), radius=6, seed=s) for s in (3, 4))
    return np.stack([a, b, a]), np.stack([la, lb, np.zeros_like(la)])


@pytest.fixture(scope="module")
def trained(pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "model"
    model, history = nb.train(*pair, config=TrainConfig(**OPTIONS), out=out)
    return model, history, out


def test_tiny_network_learns(trained, pair):
    model, history, out = trained
    assert [h["step"] for h in history] == [5, 10, 15, 20]
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    best = max(history, key=lambda h: h["val_f1"])
    assert best["val_f1"] > 0.8  # most of the 16 validation nuclei found at IoU 0.5
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["training"]["best_step"] == best["step"]
    assert cfg["training"]["best_val_f1"] == best["val_f1"]
    # Two annotated planes (the unlabeled one is skipped): one trains, one validates.
    assert cfg["training"]["data"]["planes"] == 1 and cfg["training"]["validation"]["planes"] == 1
    assert cfg["training"]["data"]["nuclei"] == cfg["training"]["validation"]["nuclei"] == 16
    assert "validation F1@0.5" in (out / "MODEL_CARD.md").read_text()
    # The reference size of segment(diameter="auto"): the training plane's median nucleus.
    from napari_binseg.unet.inference import median_diameter

    medians = {round(median_diameter(labels), 1) for labels in pair[1][:2]}
    assert cfg["postprocess"]["diameter"] in medians and cfg["postprocess"]["max_scale"] == 2.0
    assert 10 < cfg["postprocess"]["diameter"] < 14  # synthetic nuclei of radius 6


def test_saved_model_and_bundle_round_trip(trained, pair, tmp_path):
    model, _, out = trained
    image = pair[0][1]
    options = {"device": "cpu", "tile_size": 96, "backend": "torch"}
    expected = nb.predict(image, model, **options)
    assert expected.std() > 0.01  # a trained network, not a constant map
    loaded = nb.load_model(out, device="cpu")
    assert loaded.sha256 == model.sha256 and loaded.outputs == ["foreground", "centre"]
    np.testing.assert_array_equal(nb.predict(image, loaded, **options), expected)
    labels = nb.segment(image, model, **options)
    np.testing.assert_array_equal(nb.segment(image, loaded, **options), labels)
    bundle = nb.export_bundle(out, tmp_path / "bundle")
    from_bundle = nb.load_model(bundle, device="cpu")
    assert from_bundle.config["kind"] == "monai_bundle" and from_bundle.has_centres
    assert from_bundle.config["postprocess"] == loaded.config["postprocess"]
    np.testing.assert_allclose(nb.predict(image, from_bundle, **options), expected, atol=1e-6)


def test_stop_then_resume_equals_uninterrupted_run(trained, pair, tmp_path):
    _, history, out = trained
    steps = []
    model, first = nb.train(
        *pair,
        config=TrainConfig(**OPTIONS),
        out=tmp_path / "m",
        progress=lambda done, total: steps.append((done, total)),
        stop=lambda: steps[-1][0] >= 10,
    )
    assert steps == [(i, 20) for i in range(1, 11)]
    assert scores(first) == scores(history[:2])  # seeded: the same run up to the stop
    assert model.config["training"]["stopped_by"] == "stop"
    records = []
    _, resumed = nb.train(
        *pair,
        config=TrainConfig(**OPTIONS),
        out=tmp_path / "m",
        resume=tmp_path / "m" / "checkpoint",
        on_epoch=records.append,
    )
    assert scores(records) == scores(history[2:])
    assert scores(resumed) == scores(history)
    a = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert a == (out / "model.safetensors").read_bytes()


@pytest.mark.parametrize(
    "options, match",
    [
        ({"loss": "hinge"}, "loss must be one of"),
        ({"architecture": "huge"}, "architecture must be one of"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"lr": 0.0}, "lr must be"),
        ({"patch_size": 16}, "patch_size must be an integer >= 32"),
        ({"augment": ("flips", "elastic")}, r"augment: unknown augmentation\(s\) \['elastic'\]"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"device": "tpu"}, "device must be"),
    ],
)
def test_config_errors(options, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**options)


def test_config_round_trips_and_checks_against_network(pair):
    cfg = TrainConfig(**OPTIONS)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"unknown training option\(s\) \['epoch'\]"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ValueError, match="patch_size must be a multiple of 8 for UNet, got 44"):
        nb.train(*pair, config={**OPTIONS, "architecture": "mobile", "patch_size": 44})
    with pytest.raises(ValueError, match="differs from the network of init='nuclei'"):
        nb.train(*pair, config={**OPTIONS, "init": "nuclei", "architecture": "large"})


def test_training_pairs_are_checked():
    image = np.zeros((2, 32, 32), np.uint8)
    labels = np.zeros((2, 32, 32), np.uint16)
    labels[1, 4:9, 4:9] = 7
    planes = annotated_planes(image, labels)  # only the painted plane counts
    assert len(planes) == 1 and planes[0][2] == "pair, plane 1"
    np.testing.assert_array_equal(planes[0][1], labels[1])
    cases = [
        ((image, labels[..., :16]), r"image shape \(2, 32, 32\) and labels shape \(2, 32, 16\)"),
        ((image, np.zeros_like(labels)), "pair: the labels are empty; paint some nuclei"),
        ((image, labels.astype(np.float32)), "labels are float32 .* must be integers"),
        ((np.zeros((32, 32, 3), np.uint8), labels[1]), r"RGB\(A\) \(shape \(32, 32, 3\)\)"),
        (([image, image], [labels, np.zeros_like(labels)]), "pair 1: the labels are empty"),
    ]
    for args, match in cases:
        with pytest.raises(ValueError, match=match):
            annotated_planes(*args)


def test_cli_train(tmp_path, capsys):
    for i in range(2):
        image, labels = nb.synthetic_nuclei((64, 64), radius=6, seed=i)
        nb.imwrite(tmp_path / "img" / f"c{i}.tif", image)
        nb.imwrite(tmp_path / "lab" / f"c{i}_labels.tif", labels, labels=True)
    args = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab")]
    options = ["--from-scratch", "--architecture", "mobile", "--epochs", "1"]
    options += ["--steps-per-epoch", "2", "--patch-size", "64", "--batch-size", "1"]
    options += ["--threads", "1", "--device", "cpu", "--no-augment", "noise,gamma"]
    out = tmp_path / "model"
    assert main(args + ["--out", str(out), *options, "--bundle", str(tmp_path / "b")]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())["training"]
    assert cfg["config"]["architecture"] == "mobile" and cfg["config"]["init"] is None
    assert cfg["config"]["augment"] == ["scale", "rotations", "flips", "intensity"]
    assert cfg["steps_done"] == 2 and cfg["data"]["planes"] == 1
    assert nb.load_model(tmp_path / "b", device="cpu").has_centres

    nb.imwrite(tmp_path / "lab" / "c1_labels.tif", np.zeros((64, 64), np.uint16), labels=True)
    assert main(args + ["--out", str(tmp_path / "m2"), *options]) == 2
    assert "pair 1: the labels are empty" in capsys.readouterr().err


def test_efficientnet_preset_builds_offline_and_round_trips(pair, tmp_path):
    options = dict(OPTIONS, architecture="efficientnet-b0", epochs=1, steps_per_epoch=1)
    model, history = nb.train(pair[0][0], pair[1][0], config=options, out=tmp_path / "eff")
    network = json.loads((tmp_path / "eff" / "config.json").read_text())["network"]
    assert network["name"] == "FlexibleUNet" and network["kwargs"]["pretrained"] is False
    assert model.config["divisor"] == 32 and len(history) == 1
    image = pair[0][0][:80, :72]  # padded to 96 x 96 for the 32-pixel divisor
    kw = {"device": "cpu", "backend": "torch"}
    np.testing.assert_array_equal(
        nb.predict(image, model, **kw), nb.predict(image, tmp_path / "eff", **kw)
    )
