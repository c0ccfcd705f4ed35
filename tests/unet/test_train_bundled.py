"""scripts/train_bundled.py: the DSB reproduction of the bundled model, on the public API
(a folder in the DSB layout of synthetic images, two steps, then the export)."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import napari_binseg as nb

SCRIPT = Path(__file__).parents[2] / "scripts" / "train_bundled.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("train_bundled", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_is_stratified_and_seeded(script):
    names = [f"img{i:02d}" for i in range(40)]
    sizes = [(256, 256)] * 30 + [(520, 696)] * 10
    val = script.split_names(names, sizes, fraction=0.2, seed=0)
    assert val == script.split_names(names, sizes, fraction=0.2, seed=0)
    assert sum(n < "img30" for n in val) == 6 and sum(n >= "img30" for n in val) == 2
    assert script.EXCLUDED == ("175dbb364bfefc95", "003cee89357d9fe1")


def test_train_and_export_on_a_dsb_layout_folder(script, tmp_path):
    data = tmp_path / "dsb"
    rows = []
    for i, name in enumerate([f"im{i}" for i in range(7)] + [script.EXCLUDED[0]]):
        image, labels = nb.synthetic_nuclei((64, 64), radius=5, seed=i)
        nb.imwrite(data / "images" / f"{name}.tif", image)
        nb.imwrite(data / "labels" / f"{name}.tif", labels, labels=True)
        rows.append({"name": name})
    with open(data / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["name"])
        writer.writeheader()
        writer.writerows(rows)
    assert [n for n, _, _ in script.load_folder(data)] == [f"im{i}" for i in range(7)]
    run = tmp_path / "run"
    common = ["--data", str(data), "--threads", "1", "--device", "cpu"]
    script.main(common + ["--out", str(run), "--steps", "2", "--val-every", "2", "--crop", "64"])
    config = json.loads((run / "config.json").read_text())
    training = config["training"]
    assert config["name"] == "nuclei" and training["steps_done"] == 2
    assert len(training["validation_names"]) == 1  # 15% of 7, stratified by size
    assert training["validation_names"] == training["validation"]["sources"]
    assert script.EXCLUDED[0] not in training["data"]["sources"]
    assert training["config"]["architecture"] == "default"
    assert training["command"].startswith("python scripts/train_bundled.py --data")
    with pytest.raises(SystemExit):  # no default destination: nothing writes into the package
        script.main(common + ["--export", str(run)])
    dest = tmp_path / "model"
    dest.mkdir()
    hand = "## Speed (bench_unet.py)\n| 1024x1024 | 6.1 MP/s |\n"
    (dest / "MODEL_CARD.md").write_text(f"# old\n\n## Training\nold weights\n\n{hand}")
    script.main(common + ["--export", str(run), "--dest", str(dest)])
    card = (dest / "MODEL_CARD.md").read_text()
    assert card.startswith("# nuclei: U-Net for fluorescence nuclei")
    for heading in ("Architecture", "Input", "Training", "Validation", "Reproduce"):
        assert f"\n## {heading}" in card
    # The hand-written speed section survives the export; generated ones are replaced.
    assert hand.strip() in card and "old weights" not in card
    evaluation = json.loads((dest / "config.json").read_text())["evaluation"]
    assert evaluation["validation_images"] == 1
    assert 0 <= evaluation["packaged_samples_f1_iou50"] <= 1
    model = nb.load_model(dest, device="cpu")
    assert np.isfinite(nb.predict(np.zeros((64, 64), np.uint8), model, device="cpu")).all()


def test_dsb_split_and_diameter_are_those_of_the_bundled_model(script, shared_data_dir):
    items = script.load_folder(shared_data_dir)
    assert len(items) == 376 and not {n for n, _, _ in items} & set(script.EXCLUDED)
    val = script.split_names([n for n, _, _ in items], [im.shape for _, im, _ in items])
    bundled = nb.load_model("nuclei", device="cpu").config
    assert val == sorted(bundled["training"]["validation_names"])
    assert script.training_diameter(items, set(val)) == bundled["postprocess"]["diameter"]
