"""The Evaluate widget in a real viewer."""

import numpy as np
import pandas as pd
import pytest

from napari_binseg._widgets.evaluation import MATCHED, EvaluateWidget
from napari_binseg.evaluation import error_map
from tests.widgets._helpers import output_layers, run_and_wait


@pytest.fixture
def truth_and_pred(sample_labels):
    """The sample's ground truth and a prediction with 3 objects removed and 1 added."""
    truth = sample_labels.astype(np.int32)
    pred = truth.copy()
    removed = [5, 50, 100]
    for value in removed:
        pred[pred == value] = 0
    # A false positive in a background patch.
    free = np.argwhere(truth[:-8, :-8] == 0)
    for y, x in free:
        if not truth[y : y + 8, x : x + 8].any():
            pred[y : y + 8, x : x + 8] = 1000
            break
    return truth, pred, removed


def test_error_map_exact(truth_and_pred):
    truth, pred, removed = truth_and_pred
    errors_, n_fp, n_fn = error_map(truth, pred)
    assert (n_fp, n_fn) == (1, 3)
    np.testing.assert_array_equal(errors_ == 1, pred == 1000)
    np.testing.assert_array_equal(errors_ == 2, np.isin(truth, removed))


def test_error_map_hand_made():
    truth = np.zeros((8, 12), np.uint8)
    truth[1:5, 1:5] = 1  # matched (IoU 12/16)
    truth[1:5, 7:11] = 2  # missed
    pred = np.zeros_like(truth)
    pred[1:5, 2:5] = 9
    pred[6:8, 0:2] = 3  # spurious
    errors_, n_fp, n_fn = error_map(truth, pred, iou_threshold=0.5)
    expected = np.zeros_like(truth)
    expected[1:5, 7:11] = 2
    expected[6:8, 0:2] = 1
    np.testing.assert_array_equal(errors_, expected)
    assert (n_fp, n_fn) == (1, 1)
    # At 0.8 the first pair no longer matches: both objects become errors, overlapping -> 3.
    errors_, n_fp, n_fn = error_map(truth, pred, iou_threshold=0.8)
    assert (n_fp, n_fn) == (2, 2)
    assert errors_[2, 3] == 3 and errors_[2, 1] == 2


def test_evaluate_widget(make_napari_viewer, qtbot, truth_and_pred, tmp_path, errors):
    truth, pred, removed = truth_and_pred
    viewer = make_napari_viewer()
    gt_layer = viewer.add_labels(truth, name="truth", scale=(0.5, 0.5))
    pred_layer = viewer.add_labels(pred, name="pred", scale=(0.5, 0.5), translate=(3, 4))
    widget = EvaluateWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.ground_truth.value = gt_layer
    widget.prediction.value = pred_layer

    run_and_wait(qtbot, widget)
    assert errors == []
    row = widget.table[widget.table["threshold"] == 0.5].iloc[0]
    assert (row["tp"], row["fp"], row["fn"]) == (len(np.unique(truth)) - 1 - 3, 1, 3)
    assert widget.table_view.rowCount() == len(widget.table)
    assert widget.table_view.header_labels()[:4] == ["threshold", "tp", "fp", "fn"]
    assert widget.table_view.cell_text(0, 2) == "1"

    (out,) = output_layers(viewer, "evaluate")
    assert out.name == "pred [errors]"
    np.testing.assert_array_equal(out.data == 2, np.isin(truth, removed))
    np.testing.assert_array_equal(out.data == 1, pred == 1000)
    # The rest of the prediction in one neutral colour under fixed error colours.
    np.testing.assert_array_equal(out.data == MATCHED, (pred > 0) & (pred != 1000))
    colors = {v: tuple(np.round(out.get_color(v), 3)) for v in (1, 2, MATCHED)}
    assert colors[1] == (1.0, 0.0, 1.0, 1.0) and colors[2] == (0.0, 1.0, 1.0, 1.0)
    assert colors[MATCHED][0] == colors[MATCHED][1] == colors[MATCHED][2]  # grey
    np.testing.assert_allclose(out.scale, (0.5, 0.5))
    np.testing.assert_allclose(out.translate, (3, 4))
    meta = out.metadata["napari_binseg"]
    assert meta["ground_truth"] == "truth"
    assert meta["values"]["1"] == "false positive" and meta["values"]["2"] == "false negative"
    assert meta["n_false_positive"] == 1 and meta["n_false_negative"] == 3
    assert meta["scores"]["fp"] == 1
    np.testing.assert_array_equal(pred_layer.data, pred)  # input untouched

    # Re-run updates the same layer.
    n_layers = len(viewer.layers)
    widget.iou.value = 0.9
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == n_layers
    params = out.metadata["napari_binseg"]["parameters"]
    assert params == {"iou_threshold": 0.9, "time_axis": None, "label_masks": True}

    # CSV round-trip.
    path = widget.save_csv(tmp_path / "scores")
    back = pd.read_csv(path)
    assert list(back.columns) == list(widget.table.columns)
    np.testing.assert_allclose(back["f1"].to_numpy(), widget.table["f1"].to_numpy())


def test_evaluate_widget_bad_input(make_napari_viewer, qtbot, errors):
    viewer = make_napari_viewer()
    a = viewer.add_labels(np.zeros((20, 20), np.uint8), name="a")
    b = viewer.add_labels(np.zeros((20, 30), np.uint8), name="b")
    widget = EvaluateWidget(viewer)
    widget.ground_truth.value = a
    widget.prediction.value = b
    n_layers = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "shape" in errors[0]
    assert len(viewer.layers) == n_layers
    widget.prediction.value = a  # same layer twice
    run_and_wait(qtbot, widget)
    assert len(errors) == 2 and "different layers" in errors[1]
    assert len(viewer.layers) == n_layers


def test_error_map_uses_optimal_matching_below_half():
    # truth 1 overlaps pred 1 and 2; pred 1 also overlaps truth 2. Greedy by IoU would pair
    # (1, 1) and leave two errors; the optimal matching at 0.3 pairs (1, 2) and (2, 1).
    truth = np.zeros((1, 12), np.uint8)
    pred = np.zeros_like(truth)
    truth[0, 0:6] = 1
    truth[0, 6:12] = 2
    pred[0, 2:9] = 1  # IoU with truth 1: 4/9, with truth 2: 3/10
    pred[0, 0:2] = 2  # IoU with truth 1: 2/6
    errors_, n_fp, n_fn = error_map(truth, pred, iou_threshold=0.3)
    assert (n_fp, n_fn) == (0, 0) and not errors_.any()
    errors_, n_fp, n_fn = error_map(truth, pred, iou_threshold=0.4)
    assert (n_fp, n_fn) == (1, 1)


def test_evaluate_widget_time_series(make_napari_viewer, qtbot, errors):
    truth = np.zeros((2, 10, 10), np.uint16)
    truth[:, 1:5, 1:5] = 1
    truth[1, 6:9, 6:9] = 2
    pred = truth.copy()
    pred[1, 6:9, 6:9] = 0  # frame 1 misses an object
    viewer = make_napari_viewer()
    gt_layer = viewer.add_labels(truth, name="truth")
    pred_layer = viewer.add_labels(pred, name="pred")
    widget = EvaluateWidget(viewer)
    assert widget.ground_truth.value is gt_layer and widget.prediction.value is pred_layer
    assert widget.stack.value == "ZYX" and not widget.stack.native.isHidden()
    widget.stack.value = "TYX"
    run_and_wait(qtbot, widget)
    assert errors == []
    rows = widget.table[widget.table["threshold"] == 0.5]
    assert [str(f) for f in rows["frame"]] == ["0", "1", "all"]
    assert rows["fn"].tolist() == [0, 1, 1]
    (out,) = output_layers(viewer, "evaluate")
    expected = np.where(pred > 0, MATCHED, 0).astype(np.uint8)
    expected[1, 6:9, 6:9] = 2
    np.testing.assert_array_equal(out.data, expected)


def test_evaluate_widget_defaults_by_role(make_napari_viewer, sample_labels):
    """Never one layer for both; a Count (or U-Net, Threshold) output as prediction, never a
    preview or an error map; ground truth by its name; (none) until a prediction exists."""
    viewer = make_napari_viewer()
    truth = viewer.add_labels(sample_labels, name="ground truth")
    widget = EvaluateWidget(viewer)
    assert widget.ground_truth.value is truth and widget.prediction.value is None
    count = viewer.add_labels(
        sample_labels,
        name="mask [count]",
        metadata={"napari_binseg": {"widget": "count", "source": "mask", "role": "main"}},
    )
    viewer.add_labels(sample_labels > 0, name="nuclei [preview]")
    viewer.add_labels(
        sample_labels > 0,
        name="x [errors]",
        metadata={"napari_binseg": {"widget": "evaluate", "source": "x"}},
    )
    assert widget.prediction.value is count and widget.ground_truth.value is truth
    widget.prediction.value = truth  # the user's choice is kept...
    assert widget.prediction.value is truth


def test_evaluate_widget_never_pairs_two_samples(make_napari_viewer):
    """With both 2D samples open, the prediction is not the other sample's ground truth (of
    another shape): (none) until an output of the same shape exists, then that output."""
    viewer = make_napari_viewer()
    viewer.open_sample("napari-binseg", "nuclei_2d")
    viewer.open_sample("napari-binseg", "nuclei_2d_small")
    widget = EvaluateWidget(viewer)
    small_truth = viewer.layers["nuclei_2d_small ground truth"]
    assert widget.ground_truth.value is small_truth and widget.prediction.value is None
    big = viewer.add_labels(viewer.layers["nuclei_2d ground truth"].data > 0, name="big [otsu]")
    assert widget.prediction.value is None
    small = viewer.add_labels(small_truth.data > 0, name="small [otsu]")
    assert widget.prediction.value is small
    widget.ground_truth.value = viewer.layers["nuclei_2d ground truth"]
    assert widget.prediction.value is big


def test_evaluate_widget_refuses_multiotsu_classes(make_napari_viewer, qtbot, errors):
    """A multi-Otsu class image as the prediction: one message, not class regions scored as
    nuclei."""
    viewer = make_napari_viewer()
    truth = np.zeros((20, 20), np.uint8)
    truth[2:8, 2:8], truth[10:18, 10:18] = 1, 2
    viewer.add_labels(truth, name="ground truth")
    classes = viewer.add_labels(
        truth.copy(),
        name="img [multiotsu]",
        metadata={
            "napari_binseg": {
                "widget": "threshold",
                "method": "multiotsu",
                "thresholds": [12.0, 30.0],
                "source": "img",
            }
        },
    )
    widget = EvaluateWidget(viewer)
    assert widget.prediction.value is classes
    run_and_wait(qtbot, widget)
    assert len(errors) == 1 and "holds multi-Otsu classes" in errors[0] and "(12)" in errors[0]
