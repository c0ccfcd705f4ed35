"""napari_binseg.train: a tiny U-Net on synthetic nuclei (CPU, one thread), saving, loading,
resuming, MONAI bundle export, config checks, bad data and diverging runs, the model card,
and ``napari-binseg train``."""

import json
import math
import warnings

import numpy as np
import pytest

import napari_binseg as nb
from napari_binseg.unet.training import (
    StartingModelKept,
    TrainConfig,
    TrainingDiverged,
    model_card,
)
from napari_binseg.unet.training import loop as training_loop

from .conftest import TINY

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
    # From scratch: the bundled model's reference size; the nuclei (radius 6, ~12 px) train
    # at the scale segment(diameter="auto") will run them at.
    assert cfg["postprocess"]["diameter"] == 19.3 and cfg["postprocess"]["max_scale"] == 3.0
    assert cfg["training"]["data"]["scales"] == [1.5]


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
        ({"epochs": "3"}, "train.epochs must be an integer, got '3'"),
        ({"epochs": True}, "train.epochs must be an integer"),
        ({"minutes": "5"}, "train.minutes must be a number"),
        ({"augment": 5}, "train.augment must be a list of strings"),
        ({"loss": ["ce"]}, "train.loss must be one of"),
        ({"init": 3}, "train.init must be 'nuclei', a model folder or None"),
    ],
)
def test_config_errors(options, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**options)


def test_config_round_trips_and_checks_against_network(pair):
    cfg = TrainConfig(**OPTIONS)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown setting train.epoch; known: architecture"):
        TrainConfig.from_dict({"epoch": 3})
    for data in ([["epochs", 3]], "epochs", 3):
        with pytest.raises(ValueError, match="train must be a JSON object"):
            TrainConfig.from_dict(data)
        with pytest.raises(ValueError, match="train must be a JSON object"):
            nb.train(*pair, config=data)
    with pytest.raises(ValueError, match="patch_size must be a multiple of 8 for UNet, got 44"):
        nb.train(*pair, config={**OPTIONS, "architecture": "mobile", "patch_size": 44})
    with pytest.raises(ValueError, match="differs from the network of init='nuclei'"):
        nb.train(*pair, config={**OPTIONS, "init": "nuclei", "architecture": "large"})
    # A 3D network (given, or an init model's) cannot learn from planes: said up front.
    volume = {"name": "UNet", "kwargs": TINY["kwargs"] | {"spatial_dims": 3}}
    with pytest.raises(ValueError, match="architecture: the network is 3D; training takes 2D"):
        nb.train(*pair, config={**OPTIONS, "architecture": volume})


def test_cli_train(tmp_path, capsys):
    from napari_binseg.cli import main

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
    assert cfg["config"]["augment"] == ["scale", "rotations", "flips", "blur", "intensity"]
    assert cfg["steps_done"] == 2 and cfg["data"]["planes"] == 1
    assert nb.load_model(tmp_path / "b", device="cpu").has_centres

    nb.imwrite(tmp_path / "lab" / "c1_labels.tif", np.zeros((64, 64), np.uint16), labels=True)
    assert main(args + ["--out", str(tmp_path / "m2"), *options]) == 2
    assert "c1.tif: the labels are empty" in capsys.readouterr().err


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


def test_garbage_resume_checkpoints_are_refused(pair, tmp_path):
    config = {**OPTIONS, "epochs": 1, "steps_per_epoch": 1}
    folder = tmp_path / "ckpt"
    folder.mkdir()
    with pytest.raises(ValueError, match="resume: .* holds no checkpoint.safetensors"):
        nb.train(*pair, config=config, resume=folder)
    (folder / "checkpoint.safetensors").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="checkpoint.safetensors is not a readable checkpoint"):
        nb.train(*pair, config=config, resume=folder)
    from safetensors.numpy import save_file

    save_file({"x": np.zeros(3, np.float32)}, str(folder / "checkpoint.safetensors"))
    with pytest.raises(ValueError, match="resume: cannot read .*checkpoint.json"):
        nb.train(*pair, config=config, resume=folder)
    (folder / "checkpoint.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a napari-binseg training checkpoint"):
        nb.train(*pair, config=config, resume=folder / "checkpoint.safetensors")


def test_checkpoint_of_another_network_is_refused(trained, pair):
    _, _, out = trained
    other = {**OPTIONS, "architecture": "mobile", "epochs": 1, "steps_per_epoch": 1}
    with pytest.raises(ValueError, match="resume: the checkpoint does not fit the network"):
        nb.train(*pair, config=other, resume=out / "checkpoint")


def test_bad_images_are_refused_up_front_naming_them(pair, tmp_path):
    image = pair[0].astype(np.float32)
    image[1, 5, 5] = np.nan
    with pytest.raises(ValueError, match="pair, plane 1: the image holds 1 NaN or infinite"):
        nb.train(image, pair[1], config=OPTIONS, out=tmp_path / "m")
    assert not (tmp_path / "m").exists()
    val = (np.full((32, 32), np.inf, np.float32), pair[1][0][:32, :32])
    with pytest.raises(ValueError, match="validation pair: the image holds 1024 NaN"):
        nb.train(*pair, config=OPTIONS, validation=val)
    nb.imwrite(tmp_path / "img" / "cells.tif", image[1])
    nb.imwrite(tmp_path / "lab" / "cells_labels.tif", pair[1][1], labels=True)
    with pytest.raises(ValueError, match=r"cells\.tif: the image holds 1 NaN"):
        nb.train(tmp_path / "img", tmp_path / "lab", config=OPTIONS)
    with pytest.raises(ValueError, match=r"the image is 1 x 96 pixels"):
        nb.train(pair[0][0][:1], pair[1][0][:1], config=OPTIONS)


def _nan_after(n):
    """The dice+ce loss, NaN from the ``n``-th training batch on (validation is unaffected)."""
    calls = []

    def loss(logits, target):
        value = training_loop.loss_fn(logits, target)
        if logits.requires_grad:
            calls.append(1)
            if len(calls) >= n:
                return value * math.nan
        return value

    return loss


def test_a_diverging_run_stops_keeping_the_best_epoch(pair, tmp_path, monkeypatch):
    monkeypatch.setitem(training_loop.LOSSES, "ce", _nan_after(13))
    config = {**OPTIONS, "loss": "ce"}
    with pytest.raises(TrainingDiverged) as info:
        nb.train(*pair, config=config, out=tmp_path / "m")
    message = str(info.value)
    assert "the training loss became nan at step 13" in message
    history = info.value.history
    assert [h["step"] for h in history] == [5, 10]
    best = max(history, key=lambda h: h["val_f1"])
    assert f"the best epoch before it (step {best['step']}, validation F1@0.5" in message
    assert f"is kept in {tmp_path / 'm'}" in message
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())["training"]
    assert cfg["stopped_by"] == "non-finite loss" and cfg["steps_done"] == 12
    assert cfg["best_step"] == best["step"]
    assert "training loss became NaN or infinite" in (tmp_path / "m" / "MODEL_CARD.md").read_text()
    loaded = nb.load_model(tmp_path / "m", device="cpu")
    assert all(torch_finite(v) for v in loaded.module.state_dict().values())
    prob = nb.predict(pair[0][1], info.value.model, device="cpu", backend="torch")
    assert np.isfinite(prob).all() and prob.std() > 0.01
    # Before the first validation nothing is kept: a plain error.
    monkeypatch.setitem(training_loop.LOSSES, "ce", _nan_after(2))
    with pytest.raises(TrainingDiverged, match="before the first validation; no model"):
        nb.train(*pair, config=config, out=tmp_path / "m2")
    assert not (tmp_path / "m2" / "model.safetensors").exists()


def torch_finite(tensor):
    import torch

    return bool(torch.isfinite(tensor.float()).all())


def test_model_card_sections_replace_or_add(trained):
    _, _, out = trained
    config = json.loads((out / "config.json").read_text())
    card = model_card(config, sections={"Limitations": "None known.", "Data": "Synthetic."})
    assert card.startswith(f"# {config['name']}: U-Net trained with napari-binseg")
    headings = [line for line in card.splitlines() if line.startswith("## ")]
    assert headings == ["## Input", "## Training", "## Data", "## Limitations"]
    assert card.rstrip().endswith("None known.")
    assert "| epoch | step | train loss | val loss | val F1@0.5 | val F1@0.5 per image |" in card
    assert "runs them at for a reference nucleus of 19.3 px: 1 at 1.5x." in card


def test_cli_train_refuses_bad_input(tmp_path, capsys):
    from napari_binseg.cli import main

    image, labels = nb.synthetic_nuclei((64, 64), radius=6, seed=0)
    nb.imwrite(tmp_path / "img" / "c0.tif", image)
    nb.imwrite(tmp_path / "lab" / "c0_labels.tif", labels, labels=True)
    args = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab")]
    args += ["--out", str(tmp_path / "m"), "--from-scratch", "--architecture", "mobile"]
    args += ["--epochs", "1", "--steps-per-epoch", "1", "--patch-size", "64", "--device", "cpu"]
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "checkpoint.safetensors").write_bytes(b"garbage")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "type.json").write_text('{"val_fraction": "half"}')
    cases = [
        (["--resume", str(tmp_path / "ckpt")], "is not a readable checkpoint"),
        (["--config", str(tmp_path / "list.json")], "JSON object"),
        (["--config", str(tmp_path / "type.json")], "val_fraction must be a number"),
    ]
    for extra, message in cases:
        assert main(args + extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    data = (tmp_path / "img" / "c0.tif").read_bytes()
    (tmp_path / "img" / "c0.tif").write_bytes(data[: len(data) // 2])
    assert main(args) == 2
    assert "image c0.tif: cannot read it" in capsys.readouterr().err


def _copy_with_post(model, folder, **post):
    """A copy of the model folder ``model`` at ``folder`` with ``post`` in its postprocess."""
    folder.mkdir()
    for name in ("model.safetensors", "config.json"):
        (folder / name).write_bytes((model / name).read_bytes())
    config = json.loads((folder / "config.json").read_text())
    config["postprocess"].update(post)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.filterwarnings("ignore::napari_binseg.unet.training.StartingModelKept")
def test_fine_tune_validates_with_the_init_models_post_processing(trained, pair, tmp_path):
    """The epoch is chosen by the objects segment() would give with the model's own
    post-processing: an init whose min_size removes every object validates at F1 0."""
    _, history, out = trained
    strict = _copy_with_post(out, tmp_path / "strict", min_size=96 * 96 + 1)
    options = OPTIONS | {"architecture": None, "epochs": 1, "steps_per_epoch": 1, "lr": 1e-6}
    _, own = nb.train(*pair, config=TrainConfig(**options | {"init": str(out)}))
    _, removed = nb.train(*pair, config=TrainConfig(**options | {"init": str(strict)}))
    assert own[0]["val_f1"] > 0.5 and removed[0]["val_f1"] == 0.0


@pytest.mark.filterwarnings("ignore::napari_binseg.unet.training.StartingModelKept")
def test_fine_tune_trains_at_the_init_models_scale(trained, pair, tmp_path):
    """Nuclei 4x the init model's reference: the planes train at the scale segment() runs
    them at (0.5x), and the written model keeps the init's reference and size rule, so
    segment() keeps running them there (before: the training nuclei's median became the
    reference and the planes trained at full size)."""
    from napari_binseg.unet.inference import median_diameter

    _, _, out = trained
    reference = round(median_diameter(pair[1][0]) / 4, 1)
    init = _copy_with_post(
        out, tmp_path / "init", diameter=reference, max_scale=1.5, native_max=2.0
    )
    options = OPTIONS | {"architecture": None, "epochs": 1, "steps_per_epoch": 2}
    model, _ = nb.train(pair[0], pair[1], config=TrainConfig(**options | {"init": str(init)}))
    post = model.config["postprocess"]
    assert (post["diameter"], post["max_scale"], post["native_max"]) == (reference, 1.5, 2.0)
    assert model.config["training"]["data"]["scales"] == [0.5]


@pytest.mark.filterwarnings("ignore::napari_binseg.unet.training.StartingModelKept")
def test_a_config_without_max_scale_keeps_its_cap_written_out(trained, pair, tmp_path):
    """An init config without ``postprocess.max_scale`` runs at scale.LEGACY_MAX_SCALE (2x):
    a fine-tune and a MONAI bundle export write that cap out, so the model keeps it (before:
    the fine-tune wrote 3x, the export nothing; from scratch: 3x, test_tiny_network_learns)."""
    _, _, out = trained
    init = _copy_with_post(out, tmp_path / "init")
    config = json.loads((init / "config.json").read_text())
    del config["postprocess"]["max_scale"]
    (init / "config.json").write_text(json.dumps(config))
    options = OPTIONS | {"architecture": None, "epochs": 1, "steps_per_epoch": 1}
    model, _ = nb.train(*pair, config=TrainConfig(**options | {"init": str(init)}))
    assert model.config["postprocess"]["max_scale"] == 2.0
    nb.export_bundle(init, tmp_path / "bundle")
    metadata = json.loads((tmp_path / "bundle" / "configs" / "metadata.json").read_text())
    assert metadata["napari_binseg"]["postprocess"]["max_scale"] == 2.0


@pytest.mark.filterwarnings("ignore::napari_binseg.unet.training.StartingModelKept")
def test_fine_tune_reads_the_init_config_as_load_model_does(trained, pair, tmp_path):
    """An init config without a postprocess section also ran at scale.LEGACY_MAX_SCALE: the
    fine-tune keeps 2x (before: 3x, the from-scratch default); a bad max_scale stops the run
    at once, naming the init (before: a TypeError deep in the resizing for "abc")."""
    _, _, out = trained
    init = _copy_with_post(out, tmp_path / "init")
    config = json.loads((init / "config.json").read_text())
    del config["postprocess"]
    (init / "config.json").write_text(json.dumps(config))
    options = OPTIONS | {"architecture": None, "epochs": 1, "steps_per_epoch": 1}
    model, _ = nb.train(*pair, config=TrainConfig(**options | {"init": str(init)}))
    assert model.config["postprocess"]["max_scale"] == 2.0
    bad = _copy_with_post(out, tmp_path / "bad", max_scale="abc")
    with pytest.raises(ValueError, match=r"^init '.*bad': postprocess.max_scale must be a num"):
        nb.train(*pair, config=TrainConfig(**options | {"init": str(bad)}))


def _tensors(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def weak(pair, tmp_path_factory):
    """A tiny model barely trained (one step, lr 1e-5): fine-tuning it can only improve."""
    out = tmp_path_factory.mktemp("weak") / "model"
    options = {**OPTIONS, "epochs": 1, "steps_per_epoch": 1, "lr": 1e-5}
    nb.train(*pair, config=options, out=out)
    return out


def test_fine_tune_that_only_gets_worse_keeps_the_starting_model(trained, pair, tmp_path):
    """A learning rate of 0.5 wrecks a good model: no epoch beats the starting model (epoch 0),
    so the model written and returned is the starting model, weight for weight, and the
    config, the card and a warning say so (before: the best wrecked epoch was written)."""
    _, _, init = trained
    options = OPTIONS | {"init": str(init), "architecture": None, "lr": 0.5}
    options |= {"epochs": 2, "steps_per_epoch": 2}
    epochs = []
    with pytest.warns(StartingModelKept) as warned:
        model, history = nb.train(
            *pair, config=options, out=tmp_path / "m", on_epoch=epochs.append
        )
    assert [(h["epoch"], h["step"]) for h in history] == [(0, 0), (1, 2), (2, 4)]
    assert epochs == history and history[0]["train_loss"] is None
    start = history[0]["val_f1"]
    assert start > 0.8 and max(h["val_f1"] for h in history[1:]) < start
    (message,) = [str(w.message) for w in warned]
    assert message.startswith(f"no epoch beat the starting model (validation F1@0.5 {start:.4f}")
    assert message.endswith("the model written is the starting model, unchanged")
    expected = _tensors(init)
    written = _tensors(tmp_path / "m")
    assert written.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(written[name], value)
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())["training"]
    assert cfg["init_kept"] is True and cfg["best_step"] == 0 and cfg["steps_done"] == 4
    assert [h["epoch"] for h in cfg["history"]] == [0, 1, 2]
    card = (tmp_path / "m" / "MODEL_CARD.md").read_text()
    assert "No epoch beat the starting model" in card and "| 0 | 0 | - |" in card
    kw = {"device": "cpu", "backend": "torch"}
    image = pair[0][1]
    expected = nb.predict(image, init, **kw)
    np.testing.assert_array_equal(nb.predict(image, model, **kw), expected)
    np.testing.assert_array_equal(nb.predict(image, tmp_path / "m", **kw), expected)


def test_fine_tune_that_improves_keeps_its_best_epoch_and_resumes_identically(
    weak, pair, tmp_path
):
    """Epoch 0 is in the history and the run's state: a stopped and resumed fine-tune
    equals an uninterrupted one."""
    options = OPTIONS | {"init": str(weak), "architecture": None}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no StartingModelKept
        model, history = nb.train(*pair, config=options, out=tmp_path / "full")
    assert [h["step"] for h in history] == [0, 5, 10, 15, 20]
    best = max(history, key=lambda h: h["val_f1"])
    assert best["val_f1"] > 0.8 > history[0]["val_f1"]
    tr = model.config["training"]
    assert tr["init_kept"] is False and tr["best_step"] == best["step"] > 0
    steps = []
    nb.train(
        *pair,
        config=options,
        out=tmp_path / "m",
        progress=lambda done, total: steps.append(done),
        stop=lambda: steps[-1] >= 10,
    )
    _, resumed = nb.train(
        *pair, config=options, out=tmp_path / "m", resume=tmp_path / "m" / "checkpoint"
    )
    assert scores(resumed) == scores(history)
    a = (tmp_path / "m" / "model.safetensors").read_bytes()
    assert a == (tmp_path / "full" / "model.safetensors").read_bytes()


def test_cli_train_says_the_starting_model_was_kept(trained, tmp_path, capsys):
    from napari_binseg.cli import main

    image, labels = nb.synthetic_nuclei((96, 96), radius=6, seed=3)
    nb.imwrite(tmp_path / "img" / "c.tif", image)
    nb.imwrite(tmp_path / "lab" / "c_labels.tif", labels, labels=True)
    args = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab")]
    args += ["--out", str(tmp_path / "m"), "--init", str(trained[2]), "--lr", "0.5"]
    args += ["--epochs", "1", "--steps-per-epoch", "2", "--patch-size", "64"]
    args += ["--threads", "1", "--device", "cpu"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # printed, not warned
        assert main(args) == 0
    out = capsys.readouterr().out
    assert "epoch 0 (the starting model): val loss" in out
    assert "no epoch beat the starting model (validation F1@0.5" in out
    assert f"wrote {tmp_path / 'm'} (the starting model, unchanged: no epoch beat" in out


@pytest.mark.parametrize("init", [True, False])
def test_a_time_budget_spent_before_the_first_step_says_nothing_was_trained(
    trained, pair, tmp_path, capsys, init
):
    """minutes=1e-6 runs out before the first training step (during a fine-tune's
    validation of its starting model): an error says nothing was trained, and for a
    fine-tune that the folder holds the starting model (before: a fine-tune was "kept"
    because "no epoch beat the starting model", though no epoch had been trained)."""
    from napari_binseg.cli import main

    options = OPTIONS | {"minutes": 1e-6}
    if init:
        options |= {"init": str(trained[2]), "architecture": None}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no StartingModelKept
        with pytest.raises(ValueError) as raised:
            nb.train(*pair, config=options, out=tmp_path / "m")
    message = str(raised.value)
    assert message.startswith("minutes=1e-06 ran out before the first training step")
    assert message.endswith("; nothing was trained: give more minutes, or none")
    assert ("validating the starting model took" in message) == init
    assert (f"{tmp_path / 'm'} holds the starting model, unchanged" in message) == init
    if init:
        written = _tensors(tmp_path / "m")
        assert all(np.array_equal(written[k], v) for k, v in _tensors(trained[2]).items())
    image, labels = nb.synthetic_nuclei((96, 96), radius=6, seed=3)
    nb.imwrite(tmp_path / "img" / "c.tif", image)
    nb.imwrite(tmp_path / "lab" / "c_labels.tif", labels, labels=True)
    args = ["train", "--images", str(tmp_path / "img"), "--labels", str(tmp_path / "lab")]
    args += ["--out", str(tmp_path / "cli"), "--minutes", "1e-6", "--patch-size", "64"]
    args += ["--threads", "1", "--device", "cpu"]
    args += ["--init", str(trained[2])] if init else ["--from-scratch", "--architecture", "mobile"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "wrote" not in captured.out
    assert "ran out before the first training step" in captured.err


class _Pooled:
    attrs = {"loss": 0.5}


@pytest.mark.parametrize(
    "scores, best_epoch",
    [
        ([0.8, 0.85, 0.89], 0),  # within one standard error (0.1 on 16 nuclei): kept
        ([0.8, 0.85, 0.95, 0.93], 2),  # beyond it: the best epoch
        ([0.8, 0.91, 0.92], 2),  # once beaten, the best of the fine-tuned epochs
        ([0.0, 0.0, 0.1], 2),  # a starting model that finds nothing has no noise
    ],
)
def test_a_fine_tuned_epoch_must_beat_the_starting_model_by_one_standard_error(
    trained, pair, tmp_path, monkeypatch, scores, best_epoch
):
    """Validation scores scripted: the best of several epochs on a few nuclei beats the
    starting model by luck; it must beat it by more than sqrt(F1 (1 - F1) / n)."""
    from napari_binseg.unet.training import api

    script = iter(scores)
    monkeypatch.setattr(api, "validate", lambda *a, **k: (next(script), 0.0, _Pooled()))
    options = OPTIONS | {"init": str(trained[2]), "architecture": None}
    options |= {"epochs": len(scores) - 1, "steps_per_epoch": 1}
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        model, history = nb.train(*pair, config=options, out=tmp_path / "m")
    tr = model.config["training"]
    assert tr["validation"]["nuclei"] == 16
    assert tr["init_margin"] == pytest.approx(math.sqrt(scores[0] * (1 - scores[0]) / 16))
    assert tr["best_step"] == best_epoch and tr["init_kept"] == (best_epoch == 0)
    assert len([w for w in warned if w.category is StartingModelKept]) == (best_epoch == 0)
    written = _tensors(tmp_path / "m")
    assert all(np.array_equal(written[k], v) for k, v in _tensors(trained[2]).items()) == (
        best_epoch == 0
    )


@pytest.mark.filterwarnings("ignore::napari_binseg.unet.training.StartingModelKept")
@pytest.mark.parametrize("ids, nuclei", [((1, 2), 2), ((1, 1), 1)])
def test_validation_nuclei_without_background_are_counted(trained, pair, ids, nuclei):
    """Labels covering the whole validation plane (no background pixel) are all nuclei: the
    count and the starting model's margin over it (before: one fewer, and a single nucleus
    gave 0 nuclei and a ZeroDivisionError)."""
    labels = np.repeat([[ids[0]] * 16 + [ids[1]] * 16], 32, axis=0).astype(np.int32)
    options = OPTIONS | {"init": str(trained[2]), "architecture": None}
    options |= {"epochs": 1, "steps_per_epoch": 1}
    model, history = nb.train(*pair, config=options, validation=(pair[0][0][:32, :32], labels))
    tr = model.config["training"]
    f1 = history[0]["val_f1"]
    assert tr["validation"]["nuclei"] == nuclei
    assert tr["init_margin"] == pytest.approx(math.sqrt(f1 * (1 - f1) / nuclei))


@pytest.mark.filterwarnings("ignore::napari_binseg.unet.training.StartingModelKept")
def test_fine_tune_of_a_model_without_postprocess(trained, pair, tmp_path):
    """An init whose config has ``"postprocess": null`` (load_model takes it: the defaults)
    fine-tunes with the training nuclei's median as its reference (before: AttributeError)."""
    _, _, out = trained
    init = tmp_path / "init"
    init.mkdir()
    (init / "model.safetensors").write_bytes((out / "model.safetensors").read_bytes())
    config = json.loads((out / "config.json").read_text()) | {"postprocess": None}
    (init / "config.json").write_text(json.dumps(config))
    options = OPTIONS | {"init": str(init), "architecture": None, "epochs": 1}
    model, _ = nb.train(*pair, config=TrainConfig(**options | {"steps_per_epoch": 1}))
    assert 10 < model.config["postprocess"]["diameter"] < 14  # synthetic nuclei of radius 6
    assert model.config["training"]["data"]["scales"] == [1.0]
