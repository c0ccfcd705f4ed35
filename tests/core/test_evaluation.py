"""Evaluation against ground truth: hand-made cases with values worked out by hand."""

import itertools

import numpy as np
import pandas as pd
import pytest

from napari_binseg.evaluation import (
    BOTH,
    DEFAULT_THRESHOLDS,
    FALSE_NEGATIVE,
    FALSE_POSITIVE,
    aggregate,
    error_map,
    evaluate,
    match_objects,
    pixel_scores,
)

DTYPES = [np.uint8, np.uint16, np.int32, np.int64, np.uint64]


def row(df, threshold):
    """The row of ``df`` at ``threshold`` as a dict."""
    hit = df[np.isclose(df["threshold"], threshold)]
    assert len(hit) == 1
    return hit.iloc[0].to_dict()


def counts(df, threshold):
    r = row(df, threshold)
    return int(r["tp"]), int(r["fp"]), int(r["fn"])


def embed(a, ndim):
    """A 2D case as 3D: repeat it over 4 planes (IoUs unchanged, objects become prisms)."""
    return a if ndim == 2 else np.repeat(a[None], 4, axis=0)


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_split(ndim, dtype):
    # One 10x10 nucleus predicted as two pieces: 10x6 (IoU 0.6) and 10x4 (IoU 0.4).
    truth = np.zeros((12, 12), dtype)
    truth[1:11, 1:11] = 3
    pred = np.zeros((12, 12), dtype)
    pred[1:11, 1:7] = 1
    pred[1:11, 7:11] = 2
    df = evaluate(embed(truth, ndim), embed(pred, ndim), thresholds=[0.35, 0.5, 0.6, 0.65])
    assert counts(df, 0.5) == (1, 1, 0)
    assert counts(df, 0.6) == (1, 1, 0)
    assert counts(df, 0.65) == (0, 2, 1)
    # Both pieces qualify at 0.35 but only one can match: the higher IoU wins.
    assert counts(df, 0.35) == (1, 1, 0)
    assert row(df, 0.35)["mean_matched_iou"] == pytest.approx(0.6)
    r = row(df, 0.5)
    assert r["precision"] == pytest.approx(0.5)
    assert r["recall"] == pytest.approx(1.0)
    assert r["f1"] == pytest.approx(2 / 3)
    assert r["ap"] == pytest.approx(0.5)
    assert r["panoptic_quality"] == pytest.approx(0.6 / 1.5)
    assert (r["n_true"], r["n_pred"]) == (1, 2)
    # The foregrounds are identical.
    assert df.attrs["pixel_dice"] == pytest.approx(1.0)
    assert df.attrs["pixel_iou"] == pytest.approx(1.0)


@pytest.mark.parametrize("ndim", [2, 3])
def test_merge(ndim):
    # Two touching nuclei (10x6 and 10x4) predicted as one 10x10 object.
    truth = np.zeros((12, 12), np.uint16)
    truth[1:11, 1:7] = 1
    truth[1:11, 7:11] = 2
    pred = np.zeros((12, 12), np.uint16)
    pred[1:11, 1:11] = 5
    df = evaluate(embed(truth, ndim), embed(pred, ndim), thresholds=[0.3, 0.5, 0.7])
    assert counts(df, 0.3) == (1, 0, 1)
    assert counts(df, 0.5) == (1, 0, 1)
    assert counts(df, 0.7) == (0, 1, 2)
    assert row(df, 0.5)["ap"] == pytest.approx(0.5)
    assert row(df, 0.5)["recall"] == pytest.approx(0.5)
    assert row(df, 0.5)["precision"] == pytest.approx(1.0)
    assert np.isnan(row(df, 0.7)["mean_matched_iou"])


@pytest.mark.parametrize("ndim", [2, 3])
def test_shift(ndim):
    # 10x10 square shifted by 2 columns: intersection 80, union 120, IoU 2/3.
    truth = np.zeros((12, 16), np.int32)
    truth[1:11, 1:11] = 1
    pred = np.zeros_like(truth)
    pred[1:11, 3:13] = 1
    df = evaluate(embed(truth, ndim), embed(pred, ndim), thresholds=[0.65, 0.7])
    assert counts(df, 0.65) == (1, 0, 0)
    assert counts(df, 0.7) == (0, 1, 1)
    assert row(df, 0.65)["mean_matched_iou"] == pytest.approx(2 / 3)
    assert row(df, 0.65)["panoptic_quality"] == pytest.approx(2 / 3)
    assert row(df, 0.7)["f1"] == 0
    assert df.attrs["pixel_dice"] == pytest.approx(160 / 200)
    assert df.attrs["pixel_iou"] == pytest.approx(80 / 120)


def test_optimal_matching_beats_greedy_below_half():
    # 1 x 40 strip. Truth A = [0, 20), B = [22, 30); prediction Y = [0, 6), X = [6, 26).
    # IoU(A, X) = 14/26 = 0.538, IoU(A, Y) = 6/20 = 0.3, IoU(B, X) = 4/24 = 0.167.
    # At 0.15 greedy (highest IoU first) takes A-X and leaves B and Y unmatched (tp = 1);
    # the optimal matching A-Y, B-X has tp = 2.
    truth, pred = strip_pair()
    df = evaluate(truth, pred, thresholds=[0.15, 0.2, 0.5, 0.55])
    assert counts(df, 0.15) == (2, 0, 0)
    assert row(df, 0.15)["mean_matched_iou"] == pytest.approx((0.3 + 4 / 24) / 2)
    assert row(df, 0.15)["panoptic_quality"] == pytest.approx((0.3 + 4 / 24) / 2)
    # At 0.2 both A-X and A-Y qualify, one pair only: the tie goes to the higher IoU.
    assert counts(df, 0.2) == (1, 1, 1)
    assert row(df, 0.2)["mean_matched_iou"] == pytest.approx(14 / 26)
    assert counts(df, 0.5) == (1, 1, 1)
    assert counts(df, 0.55) == (0, 2, 2)


def test_empty_prediction():
    truth = np.zeros((20, 20), np.uint16)
    truth[1:5, 1:5] = 1
    truth[10:15, 10:15] = 2
    truth[1:4, 15:19] = 4
    df = evaluate(truth, np.zeros_like(truth))
    assert (df["tp"] == 0).all() and (df["fp"] == 0).all() and (df["fn"] == 3).all()
    assert (df["recall"] == 0).all() and (df["f1"] == 0).all() and (df["ap"] == 0).all()
    assert df["precision"].isna().all()
    assert df.attrs["pixel_dice"] == 0


def test_empty_ground_truth():
    pred = np.zeros((20, 20), np.uint16)
    pred[1:5, 1:5] = 9
    pred[10:15, 10:15] = 3
    df = evaluate(np.zeros_like(pred), pred)
    assert (df["fp"] == 2).all() and (df["tp"] == 0).all() and (df["fn"] == 0).all()
    assert (df["precision"] == 0).all() and df["recall"].isna().all()


def test_both_empty_gives_nan_scores():
    z = np.zeros((8, 8), np.uint8)
    df = evaluate(z, z, thresholds=0.5)
    assert counts(df, 0.5) == (0, 0, 0)
    assert df[["precision", "recall", "f1", "ap", "panoptic_quality"]].isna().all(axis=None)
    assert np.isnan(df.attrs["pixel_dice"])


def test_default_thresholds_and_columns():
    assert DEFAULT_THRESHOLDS == (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
    a = np.zeros((8, 8), np.uint8)
    a[2:6, 2:6] = 1
    df = evaluate(a, a)
    assert list(df.columns[:10]) == [
        "threshold", "tp", "fp", "fn", "precision", "recall", "f1", "ap",
        "mean_matched_iou", "panoptic_quality",
    ]  # fmt: skip
    assert len(df) == 10 and (df["ap"] == 1).all()


def test_label_gaps_and_permutation_do_not_matter(sample_labels):
    truth = sample_labels
    # Prediction: the truth shifted by one pixel, a deterministic imperfect segmentation.
    pred = np.roll(truth, 1, axis=1)
    ref = evaluate(truth, pred)
    rng = np.random.default_rng(1)
    n = int(truth.max())
    new_ids = rng.choice(2**31 - 2, size=n, replace=False) + 1
    lut = np.concatenate([[0], new_ids]).astype(np.int64)
    gapped = evaluate(lut[truth], lut[pred])
    pd.testing.assert_frame_equal(ref, gapped)
    # A perfect prediction with the labels permuted scores 1 everywhere.
    perfect = evaluate(truth, lut[truth])
    assert (perfect["tp"] == n).all() and (perfect["ap"] == 1).all()
    assert perfect["mean_matched_iou"].to_numpy() == pytest.approx(1.0)


def test_binary_masks_are_split_into_components():
    truth = np.zeros((10, 20), np.uint16)
    truth[1:5, 1:5] = 1
    truth[1:5, 10:15] = 2
    mask = truth > 0
    # bool and 0/1 integer masks are labelled: same result as the label image.
    for m in (mask, mask.astype(np.uint8)):
        df = evaluate(truth, m, thresholds=[0.5])
        assert counts(df, 0.5) == (2, 0, 0)
    # label_masks=False keeps the 0/1 mask as one object.
    df = evaluate(truth, mask.astype(np.uint8), thresholds=[0.4], label_masks=False)
    assert counts(df, 0.4) == (1, 0, 1)


def test_time_series_per_frame_and_aggregated():
    truth = np.zeros((3, 12, 16), np.uint16)
    truth[:, 1:11, 1:11] = 1
    pred = np.zeros_like(truth)
    pred[0, 1:11, 1:11] = 4  # perfect
    pred[1, 1:11, 3:13] = 4  # shifted: IoU 2/3
    # frame 2: nothing predicted
    df = evaluate(truth, pred, thresholds=[0.5, 0.7], time_axis=0)
    assert list(df["frame"]) == [0, 0, 1, 1, 2, 2, "all", "all"]
    frames = df[df["frame"] != "all"]
    assert frames["tp"].tolist() == [1, 1, 1, 0, 0, 0]
    total = df[df["frame"] == "all"]
    assert total["tp"].tolist() == [2, 1]
    assert total["fp"].tolist() == [0, 1]
    assert total["fn"].tolist() == [1, 2]
    assert total["mean_matched_iou"].tolist() == pytest.approx([(1 + 2 / 3) / 2, 1.0])
    # As a volume there is one 3D object on each side: IoU 180 / 320.
    vol = evaluate(truth, pred, thresholds=[0.5])
    assert counts(vol, 0.5) == (1, 0, 0)
    assert row(vol, 0.5)["mean_matched_iou"] == pytest.approx(180 / 320)
    # Time on another axis gives the same result.
    moved = evaluate(
        np.moveaxis(truth, 0, 2), np.moveaxis(pred, 0, 2), thresholds=[0.5, 0.7], time_axis=2
    )
    pd.testing.assert_frame_equal(df, moved)
    assert df.attrs["pixel_true"] == 300 and df.attrs["pixel_intersection"] == 180
    assert df.attrs["pixel_pred"] == 200


def test_aggregate_equals_side_by_side_image():
    rng = np.random.default_rng(3)
    a, b = random_labels(rng, (30, 30)), random_labels(rng, (30, 30))
    c, d = random_labels(rng, (30, 30)), random_labels(rng, (30, 30))
    both = evaluate(np.hstack([a, c + (c > 0) * 100]), np.hstack([b, d + (d > 0) * 100]))
    pooled = aggregate([evaluate(a, b), evaluate(c, d)])
    pd.testing.assert_frame_equal(both, pooled)
    assert pooled.attrs == both.attrs


def random_labels(rng, shape, n=6):
    """Random overlapping rectangles painted in turn: small label images with odd overlaps."""
    out = np.zeros(shape, np.int32)
    for i in range(1, n + 1):
        y, x = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
        h, w = rng.integers(3, 12, size=2)
        out[y : y + h, x : x + w] = i
    return out


def brute_force(truth, pred, threshold):
    """Reference: IoU by per-object loops, best matching by trying every assignment."""
    t_ids = [i for i in np.unique(truth) if i]
    p_ids = [i for i in np.unique(pred) if i]
    iou = np.zeros((len(t_ids), len(p_ids)))
    for a, i in enumerate(t_ids):
        for b, j in enumerate(p_ids):
            inter = np.sum((truth == i) & (pred == j))
            iou[a, b] = inter / np.sum((truth == i) | (pred == j))
    best = (0, 0.0)
    small, large = sorted([len(t_ids), len(p_ids)])
    for perm in itertools.permutations(range(large), small):
        pairs = [(k, perm[k]) if len(t_ids) <= len(p_ids) else (perm[k], k) for k in range(small)]
        vals = [iou[a, b] for a, b in pairs if iou[a, b] >= threshold and iou[a, b] > 0]
        best = max(best, (len(vals), sum(vals)))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_on_random_cases(seed):
    rng = np.random.default_rng(seed)
    truth = random_labels(rng, (24, 24))
    pred = random_labels(rng, (24, 24))
    thresholds = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7]
    df = evaluate(truth, pred, thresholds=thresholds, label_masks=False)
    for t in thresholds:
        tp, sum_iou = brute_force(truth, pred, t)
        r = row(df, t)
        assert r["tp"] == tp
        if tp:
            assert r["mean_matched_iou"] * tp == pytest.approx(sum_iou)


def test_dask_input_gives_same_result(sample_labels):
    import dask.array as da

    pred = np.roll(sample_labels, 2, axis=0)
    ref = evaluate(sample_labels, pred)
    lazy = evaluate(da.from_array(sample_labels, chunks=128), da.from_array(pred, chunks=100))
    pd.testing.assert_frame_equal(ref, lazy)


def test_pixel_scores():
    g = np.zeros((4, 4), bool)
    g[:2] = True
    p = np.zeros((4, 4), np.uint16)
    p[1:3] = 7
    s = pixel_scores(g, p)
    assert s["dice"] == pytest.approx(0.5)
    assert s["iou"] == pytest.approx(4 / 12)
    assert (s["intersection"], s["true"], s["pred"]) == (4, 8, 8)


@pytest.mark.parametrize(
    ("truth", "pred", "kwargs", "match"),
    [
        (np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), {}, "same shape"),
        (np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), {}, "ground_truth"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float64), {}, "prediction"),
        (np.zeros((0, 4), np.uint8), np.zeros((0, 4), np.uint8), {}, "empty"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), {"thresholds": [0, 1]}, "> 0"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), {"thresholds": []}, "non-empty"),
        (np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8), {"time_axis": 0}, "time_axis"),
    ],
)
def test_bad_input(truth, pred, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(truth, pred, **kwargs)


def dense_reference(truth, pred, thresholds):
    """tp per threshold from a dense IoU matrix and one assignment per threshold (numpy/scipy)."""
    from scipy.optimize import linear_sum_assignment

    t_ids, t = np.unique(truth, return_inverse=True)
    p_ids, p = np.unique(pred, return_inverse=True)
    table = np.bincount(t.ravel() * len(p_ids) + p.ravel(), minlength=len(t_ids) * len(p_ids))
    table = table.reshape(len(t_ids), len(p_ids))[1:, 1:].astype(np.float64)
    area_t = np.bincount(t.ravel())[1:, None]
    area_p = np.bincount(p.ravel())[None, 1:]
    iou = table / (area_t + area_p - table)
    tps = []
    for th in thresholds:
        cost = -(iou >= th).astype(np.float64) - iou / (min(iou.shape) + 1)
        rows, cols = linear_sum_assignment(cost)
        tps.append(int(np.count_nonzero(iou[rows, cols] >= th)))
    return tps


def test_real_images_match_dense_reference(shared_data_dir):
    import tifffile
    from scipy import ndimage
    from skimage.filters import threshold_otsu

    index = pd.read_csv(shared_data_dir / "index.csv")
    thresholds = [0.1, 0.3, 0.5, 0.7, 0.9]
    for name in index["name"].iloc[::60]:
        image = tifffile.imread(shared_data_dir / "images" / f"{name}.tif")
        truth = tifffile.imread(shared_data_dir / "labels" / f"{name}.tif")
        pred, _ = ndimage.label(image > threshold_otsu(image))
        df = evaluate(truth, pred, thresholds=thresholds)
        assert df["tp"].tolist() == dense_reference(truth, pred, thresholds), name
        assert (df["n_true"] == truth.max()).all()


def test_match_objects_pairs():
    # The greedy-vs-optimal strip: at 0.15 the pairs are A-Y (1-1) and B-X (2-2).
    truth, pred = strip_pair()
    m = match_objects(truth, pred, threshold=0.15)
    order = np.argsort(m["true_ids"])
    assert m["true_ids"][order].tolist() == [1, 2]
    assert m["pred_ids"][order].tolist() == [1, 2]
    assert m["iou"][order] == pytest.approx([0.3, 4 / 24])
    m = match_objects(truth, pred, threshold=0.2)
    assert (m["true_ids"].tolist(), m["pred_ids"].tolist()) == ([1], [2])
    assert m["false_negatives"].tolist() == [2] and m["false_positives"].tolist() == [1]
    # Gapped labels are renumbered consistently in the returned images.
    gapped = match_objects(truth * 7, pred * 3, threshold=0.2)
    np.testing.assert_array_equal(gapped["ground_truth"], truth)
    assert gapped["pred_ids"].tolist() == [2]


# -------------------------------------------------------------------------- error map


def strip_pair():
    """Truth 1 (20 px) and 2 (8 px); pred 1 (6 px) overlaps truth 1, pred 2 (20 px) both."""
    truth = np.zeros((1, 40), np.uint8)
    truth[0, 0:20] = 1
    truth[0, 22:30] = 2
    pred = np.zeros_like(truth)
    pred[0, 0:6] = 1
    pred[0, 6:26] = 2
    return truth, pred


def test_error_map_marks_the_unmatched_objects():
    truth, pred = strip_pair()
    # IoU t1-p1 0.3, t1-p2 14/26, t2-p2 4/24: at 0.2 one pair, the better one (t1-p2).
    errors, n_fp, n_fn = error_map(truth, pred, iou_threshold=0.2)
    assert (n_fp, n_fn) == (1, 1)
    assert errors.dtype == np.uint8
    expected = np.zeros(40, np.uint8)
    expected[0:6] = FALSE_POSITIVE  # p1
    expected[22:30] = FALSE_NEGATIVE  # t2
    np.testing.assert_array_equal(errors[0], expected)
    # At 0.1 both truths match (t1-p1, t2-p2): nothing marked.
    assert error_map(truth, pred, iou_threshold=0.1)[1:] == (0, 0)
    # A false positive overlapping a false negative is BOTH.
    errors, n_fp, n_fn = error_map(truth, pred, iou_threshold=0.6)
    assert (n_fp, n_fn) == (2, 2) and (errors[0, 22:26] == BOTH).all()


def test_error_map_agrees_with_the_table(sample_labels):
    from scipy import ndimage as ndi

    pred = ndi.label(ndi.binary_erosion(sample_labels > 0, iterations=2))[0]
    for t in (0.3, 0.5, 0.8):
        errors, n_fp, n_fn = error_map(sample_labels, pred, iou_threshold=t)
        r = row(evaluate(sample_labels, pred, thresholds=[t]), t)
        assert (n_fp, n_fn) == (int(r["fp"]), int(r["fn"]))
        m = match_objects(sample_labels, pred, threshold=t)
        fp = np.isin(m["prediction"], m["false_positives"])
        fn = np.isin(m["ground_truth"], m["false_negatives"])
        np.testing.assert_array_equal(errors, fp * FALSE_POSITIVE + fn * FALSE_NEGATIVE)


def test_evaluate_returns_the_error_map_per_frame():
    truth, pred = strip_pair()
    stack_t = np.stack([truth, truth, np.zeros_like(truth)], axis=1)  # (1, 3, 40): time axis 1
    stack_p = np.stack([pred, truth, truth], axis=1)
    table, errors = evaluate(
        stack_t, stack_p, thresholds=[0.2], time_axis=1, return_error_map=True,
        error_threshold=0.2,
    )  # fmt: skip
    assert errors.shape == stack_t.shape
    np.testing.assert_array_equal(errors[:, 0], error_map(truth, pred, iou_threshold=0.2)[0])
    assert not errors[:, 1].any()
    np.testing.assert_array_equal(errors[:, 2], FALSE_POSITIVE * (truth > 0))
    same, n_fp, n_fn = error_map(stack_t, stack_p, iou_threshold=0.2, time_axis=1)
    np.testing.assert_array_equal(same, errors)
    assert (n_fp, n_fn) == (int(table["fp"].iloc[-1]), int(table["fn"].iloc[-1]))
    plain, errors_2d = evaluate(truth, pred, return_error_map=True, error_threshold=0.2)
    np.testing.assert_array_equal(errors_2d, errors[:, 0])
    pd.testing.assert_frame_equal(plain, evaluate(truth, pred))


@pytest.mark.parametrize("func", [evaluate, match_objects, error_map, pixel_scores])
def test_different_shapes_are_refused(func):
    with pytest.raises(ValueError, match=r"same shape, got \(4, 4\) and \(4, 5\)"):
        func(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))


@pytest.mark.parametrize("func", [evaluate, match_objects, error_map])
def test_negative_labels_are_refused_like_count_cells(func):
    truth = np.zeros((6, 6), np.int32)
    truth[1:3, 1:3] = -2
    with pytest.raises(ValueError, match="ground_truth holds negative values"):
        func(truth, np.zeros_like(truth))
    with pytest.raises(ValueError, match="prediction holds negative values"):
        func(np.zeros_like(truth), truth)


def test_a_mask_saved_as_0_255_is_scored_as_its_objects():
    """Fiji and the plugin's writer save masks as 0/255: two blobs are two objects."""
    truth = np.zeros((10, 10), np.uint8)
    truth[1:4, 1:4] = 1
    truth[6:9, 6:9] = 2
    mask = (truth > 0).astype(np.uint8) * 255
    row = evaluate(truth, mask).iloc[0]
    assert (row["tp"], row["fp"], row["fn"]) == (2, 0, 0)
