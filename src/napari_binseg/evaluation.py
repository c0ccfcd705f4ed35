"""Segmentation quality against ground truth: object matching at IoU thresholds, pixel scores.

Objects are compared through a sparse contingency table of the two label images (one pass over
the pixels, no per-object loops), and matched one-to-one so that the number of pairs with
IoU >= threshold is as large as possible, ties broken by higher total IoU. Above 0.5 every object
has at most one partner, so the matching is unique; below 0.5 a greedy matching can miss pairs,
which the optimal assignment does not.
"""

import numpy as np

from ._validation import check_labels, is_dask, is_mask
from .options import DEFAULT_THRESHOLDS, EvaluateOptions

#: Values of :func:`error_map`.
FALSE_POSITIVE, FALSE_NEGATIVE, BOTH = 1, 2, 3

COLUMNS = (
    "threshold",
    "tp",
    "fp",
    "fn",
    "precision",
    "recall",
    "f1",
    "ap",
    "mean_matched_iou",
    "panoptic_quality",
    "n_true",
    "n_pred",
)


def _to_instances(labels, *, label_masks, name="labels"):
    """Return consecutive instance labels 1..n (0 = background) and n.

    A binary mask (one non-zero value: 0/1, 0/255) becomes connected components with face
    connectivity when ``label_masks`` is True; other label images keep their objects, only
    renumbered, so gaps in the numbering do not matter. Negative values raise ValueError.
    """
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.view(np.uint8)
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise ValueError(f"{name} holds negative values; labels must be >= 0")
    if label_masks and is_mask(labels, hi):
        from scipy import ndimage

        components, n = ndimage.label(labels)
        return components, int(n)
    if hi <= 2 * labels.size:
        if labels.dtype == np.uint64:
            labels = labels.astype(np.int64)  # np.bincount refuses uint64
        # Small non-negative ids: a lookup table is cheaper than hashing every pixel.
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=hi + 1)[1:]) + 1
        if len(present) == hi:
            return labels, hi
        lut = np.zeros(hi + 1, np.int64)
        lut[present] = np.arange(1, len(present) + 1)
        return lut[labels], len(present)
    import fastremap

    renumbered, mapping = fastremap.renumber(labels, preserve_zero=True, in_place=False)
    return renumbered, len(mapping) - (1 if 0 in mapping else 0)


def _pair_table(truth, pred, n_true, n_pred):
    """IoU of every overlapping (true, pred) pair from a sparse contingency table.

    Returns
    -------
    rows, cols : (K,) int ndarray
        0-based object indices of the overlapping pairs.
    iou : (K,) float64 ndarray
    areas_true : (n_true,) int64 ndarray
    areas_pred : (n_pred,) int64 ndarray
    """
    from scipy import sparse

    truth = truth.ravel()
    pred = pred.ravel()
    areas_true = np.bincount(truth, minlength=n_true + 1)[1:]
    areas_pred = np.bincount(pred, minlength=n_pred + 1)[1:]
    both = (truth > 0) & (pred > 0)
    t = truth[both]
    p = pred[both]
    table = sparse.coo_matrix(
        (np.ones(len(t), np.int64), (t, p)), shape=(n_true + 1, n_pred + 1)
    ).tocsr()  # sums the duplicate (true, pred) entries: one count per overlapping pair
    table = table.tocoo()
    rows = table.row.astype(np.int64) - 1
    cols = table.col.astype(np.int64) - 1
    inter = table.data.astype(np.float64)
    iou = inter / (areas_true[rows] + areas_pred[cols] - inter)
    return rows, cols, iou, areas_true, areas_pred


def _match(rows, cols, iou, n_true, n_pred):
    """Maximum-cardinality one-to-one matching of candidate pairs, ties by higher total IoU.

    The candidate graph falls apart into small connected components (an object overlaps few
    others); pairs that are alone in theirs match directly, the rest are solved exactly with
    ``linear_sum_assignment`` per component.

    Returns
    -------
    rows, cols : (tp,) int64 ndarray
        0-based object indices of the matched pairs.
    iou : (tp,) float64 ndarray
        IoU of the matched pairs.
    """
    if len(rows) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    deg_true = np.bincount(rows, minlength=n_true)
    deg_pred = np.bincount(cols, minlength=n_pred)
    single = (deg_true[rows] == 1) & (deg_pred[cols] == 1)
    out = [(rows[single], cols[single], iou[single])]
    rows, cols, iou = rows[~single], cols[~single], iou[~single]
    if len(rows):
        from scipy import sparse
        from scipy.optimize import linear_sum_assignment
        from scipy.sparse.csgraph import connected_components

        n = n_true + n_pred
        graph = sparse.coo_matrix((np.ones(len(rows)), (rows, cols + n_true)), shape=(n, n))
        _, component = connected_components(graph, directed=False)
        pair_component = component[rows]
        order = np.argsort(pair_component, kind="stable")
        bounds = np.flatnonzero(np.diff(pair_component[order])) + 1
        for group in np.split(order, bounds):
            r_ids, r = np.unique(rows[group], return_inverse=True)
            c_ids, c = np.unique(cols[group], return_inverse=True)
            # Weight = big + IoU with big > any possible IoU sum: cardinality first, then IoU.
            big = min(len(r_ids), len(c_ids)) + 1.0
            weights = np.zeros((len(r_ids), len(c_ids)))
            weights[r, c] = big + iou[group]
            values = np.zeros_like(weights)
            values[r, c] = iou[group]
            ri, ci = linear_sum_assignment(weights, maximize=True)
            keep = weights[ri, ci] > 0
            out.append((r_ids[ri[keep]], c_ids[ci[keep]], values[ri[keep], ci[keep]]))
    return tuple(np.concatenate(parts) for parts in zip(*out, strict=True))


def match_objects(ground_truth, prediction, *, threshold=0.5, label_masks=True):
    """The one-to-one matching :func:`evaluate` uses, at one IoU threshold.

    Parameters
    ----------
    ground_truth, prediction : (M, N[, P]) array of int or bool, same shape
        Instance labels or binary masks (split into components as in :func:`evaluate`).
    threshold : float, optional
        IoU threshold in (0, 1].
    label_masks : bool, optional
        See :func:`evaluate`.

    Returns
    -------
    result : dict
        ``ground_truth`` and ``prediction``: the instance label images matched (consecutive
        labels 1..n; equal to the inputs when those are already numbered 1..n without gaps);
        ``true_ids``, ``pred_ids`` (K,) int arrays of the matched pairs' labels in those
        images and their ``iou``; ``false_negatives`` and ``false_positives``: labels left
        unmatched.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[1, 1, 0, 2, 2]]); pred = np.array([[1, 1, 0, 0, 2]])
    >>> m = match_objects(truth, pred, threshold=0.5)
    >>> m["true_ids"].tolist(), m["pred_ids"].tolist(), m["false_negatives"].tolist()
    ([1, 2], [1, 2], [])
    """
    truth, pred = _pair_inputs(ground_truth, prediction)
    (t,) = _check_thresholds(threshold, label_masks=label_masks)
    truth, pred, n_true, n_pred, (rows, cols, iou, _, _) = _paired_instances(
        truth, pred, label_masks
    )
    mr, mc, miou = _match_at(rows, cols, iou, t, n_true, n_pred)
    return {
        "ground_truth": truth,
        "prediction": pred,
        "true_ids": mr + 1,
        "pred_ids": mc + 1,
        "iou": miou,
        "false_negatives": np.setdiff1d(np.arange(1, n_true + 1), mr + 1),
        "false_positives": np.setdiff1d(np.arange(1, n_pred + 1), mc + 1),
    }


def _scores(tp, fp, fn, sum_iou):
    """Ratios from counts; NaN where a denominator is zero."""
    tp, fp, fn, sum_iou = (np.asarray(x, dtype=np.float64) for x in (tp, fp, fn, sum_iou))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = tp / (tp + fp)
        recall = tp / (tp + fn)
        f1 = 2 * tp / (2 * tp + fp + fn)
        ap = tp / (tp + fp + fn)
        mean_iou = sum_iou / tp
        pq = sum_iou / (tp + fp / 2 + fn / 2)
    return precision, recall, f1, ap, mean_iou, pq


def _table(thresholds, tp, fp, fn, sum_iou, n_true, n_pred, pixel):
    import pandas as pd

    precision, recall, f1, ap, mean_iou, pq = _scores(tp, fp, fn, sum_iou)
    df = pd.DataFrame(
        {
            "threshold": np.asarray(thresholds, dtype=np.float64),
            "tp": np.asarray(tp, dtype=np.int64),
            "fp": np.asarray(fp, dtype=np.int64),
            "fn": np.asarray(fn, dtype=np.int64),
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "ap": ap,
            "mean_matched_iou": mean_iou,
            "panoptic_quality": pq,
            "n_true": np.full(len(thresholds), n_true, dtype=np.int64),
            "n_pred": np.full(len(thresholds), n_pred, dtype=np.int64),
        }
    )
    df.attrs.update(_pixel_dict(*pixel))
    return df


def _pixel_dict(intersection, n_true_px, n_pred_px):
    union = n_true_px + n_pred_px - intersection
    total = n_true_px + n_pred_px
    return {
        "pixel_dice": 2 * intersection / total if total else float("nan"),
        "pixel_iou": intersection / union if union else float("nan"),
        "pixel_intersection": int(intersection),
        "pixel_true": int(n_true_px),
        "pixel_pred": int(n_pred_px),
    }


def _check_thresholds(thresholds, **options):
    """The IoU thresholds as a float64 array; all options checked by ``EvaluateOptions``."""
    values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"thresholds must be a non-empty sequence of numbers, got {thresholds!r}")
    EvaluateOptions(thresholds=tuple(values.tolist()), **options)
    return values


def _checked_pair(ground_truth, prediction):
    """Both label images checked (integer, same shape), dask arrays left lazy."""
    truth = check_labels(ground_truth, name="ground_truth")
    pred = check_labels(prediction, name="prediction")
    if truth.shape != pred.shape:
        raise ValueError(
            f"ground_truth and prediction must have the same shape, got {truth.shape} and "
            f"{pred.shape}"
        )
    return truth, pred


def _pair_inputs(ground_truth, prediction):
    """Both label images checked (integer, same shape) and in memory."""
    truth, pred = _checked_pair(ground_truth, prediction)
    truth = np.asarray(truth.compute() if is_dask(truth) else truth)
    pred = np.asarray(pred.compute() if is_dask(pred) else pred)
    return truth, pred


def _frames(truth, pred, time_axis):
    """(truth, prediction) pairs of the frames along ``time_axis`` (one pair when None)."""
    if time_axis is None:
        return [(truth, pred)]
    if not -truth.ndim <= time_axis < truth.ndim or truth.ndim < 3:
        raise ValueError(
            f"time_axis={time_axis} needs an axis of a 3D or 4D array, got shape {truth.shape}"
        )
    return list(
        zip(np.moveaxis(truth, time_axis, 0), np.moveaxis(pred, time_axis, 0), strict=True)
    )


def _paired_instances(truth, pred, label_masks):
    """Instance images, object counts and overlapping pairs of one frame: ``(truth, pred,
    n_true, n_pred, (rows, cols, iou, areas_true, areas_pred))`` (see :func:`_pair_table`)."""
    truth, n_true = _to_instances(truth, label_masks=label_masks, name="ground_truth")
    pred, n_pred = _to_instances(pred, label_masks=label_masks, name="prediction")
    return truth, pred, n_true, n_pred, _pair_table(truth, pred, n_true, n_pred)


def _match_at(rows, cols, iou, threshold, n_true, n_pred):
    """The optimal matching among the pairs with IoU >= ``threshold``."""
    keep = iou >= threshold
    return _match(rows[keep], cols[keep], iou[keep], n_true, n_pred)


def _errors(truth, pred, matched_true, matched_pred, n_true, n_pred):
    """Error map of instance images: unmatched predictions 1, unmatched truths 2, both 3."""
    fp = np.full(n_pred + 1, FALSE_POSITIVE, np.uint8)
    fp[0] = 0
    fp[matched_pred + 1] = 0
    fn = np.full(n_true + 1, FALSE_NEGATIVE, np.uint8)
    fn[0] = 0
    fn[matched_true + 1] = 0
    errors = fp[pred]
    errors += fn[truth]
    return errors, n_pred - len(matched_pred), n_true - len(matched_true)


def _evaluate_one(truth, pred, thresholds, label_masks, error_threshold=None):
    """Table of one image; with ``error_threshold`` also ``(errors, n_fp, n_fn)`` there."""
    truth, pred, n_true, n_pred, pairs = _paired_instances(truth, pred, label_masks)
    rows, cols, iou, areas_true, areas_pred = pairs
    tp = np.zeros(len(thresholds), np.int64)
    sum_iou = np.zeros(len(thresholds))
    for i, t in enumerate(thresholds):
        matched_iou = _match_at(rows, cols, iou, t, n_true, n_pred)[2]
        tp[i] = len(matched_iou)
        sum_iou[i] = matched_iou.sum()
    intersection = int(np.count_nonzero((truth > 0) & (pred > 0)))
    pixel = (intersection, int(areas_true.sum()), int(areas_pred.sum()))
    table = _table(thresholds, tp, n_pred - tp, n_true - tp, sum_iou, n_true, n_pred, pixel)
    if error_threshold is None:
        return table
    mr, mc, _ = _match_at(rows, cols, iou, error_threshold, n_true, n_pred)
    return table, _errors(truth, pred, mr, mc, n_true, n_pred)


def aggregate(tables):
    """Pool evaluation tables of several images (or frames) into one.

    Counts (tp, fp, fn, objects, pixels) are summed and the scores recomputed from the sums, so a
    frame with many nuclei weighs more than one with few, as in a single large image.

    Parameters
    ----------
    tables : sequence of DataFrame
        Results of :func:`evaluate` with the same thresholds.

    Returns
    -------
    table : DataFrame
        Same columns and ``attrs`` as :func:`evaluate`.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((8, 8), np.uint8); a[1:4, 1:4] = 1
    >>> one = evaluate(a, a, thresholds=[0.5])
    >>> int(aggregate([one, one])["tp"].iloc[0])
    2
    """
    tables = list(tables)
    if not tables:
        raise ValueError("tables is empty: nothing to aggregate")
    thresholds = tables[0]["threshold"].to_numpy()
    for t in tables[1:]:
        if not np.array_equal(t["threshold"].to_numpy(), thresholds):
            raise ValueError("tables were computed at different thresholds")
    total = {c: sum(t[c].to_numpy() for t in tables) for c in ("tp", "fp", "fn")}
    sum_iou = sum(
        np.nan_to_num(t["mean_matched_iou"].to_numpy() * t["tp"].to_numpy()) for t in tables
    )
    n_true = int(sum(int(t["n_true"].iloc[0]) for t in tables))
    n_pred = int(sum(int(t["n_pred"].iloc[0]) for t in tables))
    pixel = tuple(
        sum(int(t.attrs.get(k, 0)) for t in tables)
        for k in ("pixel_intersection", "pixel_true", "pixel_pred")
    )
    return _table(
        thresholds, total["tp"], total["fp"], total["fn"], sum_iou, n_true, n_pred, pixel
    )


def evaluate(
    ground_truth,
    prediction,
    *,
    thresholds=DEFAULT_THRESHOLDS,
    time_axis=None,
    label_masks=True,
    return_error_map=False,
    error_threshold=0.5,
):
    """Object and pixel scores of a segmentation against ground truth.

    Each ground-truth object is matched to at most one predicted object and vice versa; a pair
    may match when its intersection over union (IoU) is at least the threshold. The matching
    maximizes the number of matched pairs (true positives), ties broken by the higher total
    IoU, so thresholds below 0.5 are handled correctly too (a greedy matching is not optimal
    there).

    Parameters
    ----------
    ground_truth : (M, N[, P]) or (T, M, N[, P]) array of int or bool
        Reference instance labels (0 = background). Gaps in the numbering are fine.
    prediction : array of int or bool, same shape as ``ground_truth``
        Predicted instance labels.
    thresholds : float or sequence of float, optional
        IoU thresholds in (0, 1]. Default 0.5, 0.55, ..., 0.95.
    time_axis : int or None, optional
        None: the arrays are one 2D or 3D image. An axis index: each plane along that axis is a
        separate frame (objects never match across frames), and the result holds one block of
        rows per frame followed by the aggregated rows.
    label_masks : bool, optional
        Rule for binary masks: when True (default), an input whose only values are 0 and 1
        (boolean or integer, e.g. a thresholded mask) is split into connected components with
        face connectivity (4 in 2D, 6 in 3D) before matching. A label image holding a single
        object labelled 1 is therefore unchanged unless that object is disconnected. When False,
        values are taken as instance labels as they are.
    return_error_map : bool, optional
        Also return the :func:`error_map` at ``error_threshold`` (computed from the same
        matching, so it costs little).
    error_threshold : float, optional
        IoU of the error map, in (0, 1].

    Returns
    -------
    table : pandas.DataFrame
        One row per threshold with columns ``threshold, tp, fp, fn, precision, recall, f1, ap,
        mean_matched_iou, panoptic_quality, n_true, n_pred``. ``ap = tp / (tp + fp + fn)`` (Data
        Science Bowl 2018, StarDist); ``f1 = 2 tp / (2 tp + fp + fn)``; ``mean_matched_iou`` is
        the mean IoU of matched pairs; ``panoptic_quality = sum of matched IoU / (tp + fp/2 +
        fn/2)``. A ratio with a zero denominator is NaN (e.g. precision without predictions).
        ``table.attrs`` holds the foreground pixel scores ``pixel_dice`` and ``pixel_iou`` and
        their pixel counts. With ``time_axis``, a leading ``frame`` column holds the frame index
        for per-frame rows and ``"all"`` for the aggregated rows (see :func:`aggregate`), and
        ``attrs`` the aggregated pixel scores.
    errors : uint8 ndarray, shape of the inputs
        Only with ``return_error_map=True``: see :func:`error_map`.

    Raises
    ------
    ValueError
        Different shapes, float, empty or negative inputs, thresholds outside (0, 1].

    See Also
    --------
    pixel_scores : foreground Dice and IoU only.

    References
    ----------
    .. [1] Caicedo et al., "Nucleus segmentation across imaging experiments: the 2018 Data
       Science Bowl", Nature Methods 16, 1247-1253 (2019).
    .. [2] Kirillov et al., "Panoptic Segmentation", CVPR 2019.
    .. [3] Schmidt et al., "Cell Detection with Star-convex Polygons", MICCAI 2018.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.zeros((10, 20), np.uint16)
    >>> truth[1:9, 1:9] = 1; truth[1:9, 11:19] = 2
    >>> pred = np.zeros_like(truth)
    >>> pred[1:9, 2:9] = 7            # IoU 56/64 with object 1; object 2 missed
    >>> df = evaluate(truth, pred, thresholds=[0.5, 0.9])
    >>> df[["threshold", "tp", "fp", "fn"]].to_numpy().tolist()
    [[0.5, 1.0, 0.0, 1.0], [0.9, 0.0, 1.0, 2.0]]
    """
    truth, pred = _pair_inputs(ground_truth, prediction)
    values = _check_thresholds(thresholds, time_axis=time_axis, label_masks=label_masks)
    error_at = None
    if return_error_map:
        error_at = _check_thresholds(error_threshold)[0]
        if np.ndim(error_threshold):
            raise ValueError(f"error_threshold must be one number, got {error_threshold!r}")
    if time_axis is None:
        result = _evaluate_one(truth, pred, values, label_masks, error_at)
        return (result[0], result[1][0]) if return_error_map else result

    import pandas as pd

    frames = [
        _evaluate_one(t, p, values, label_masks, error_at)
        for t, p in _frames(truth, pred, time_axis)
    ]
    tables = [f[0] for f in frames] if return_error_map else frames
    total = aggregate(tables)
    parts = [f.assign(frame=i) for i, f in enumerate(tables)] + [total.assign(frame="all")]
    df = pd.concat(parts, ignore_index=True)
    df = df[["frame", *COLUMNS]]
    df.attrs = dict(total.attrs)
    if not return_error_map:
        return df
    errors = np.moveaxis(np.stack([f[1][0] for f in frames]), 0, time_axis)
    return df, errors


def error_map(ground_truth, prediction, *, iou_threshold=0.5, time_axis=None, label_masks=True):
    """Mark unmatched objects: 1 = false positive, 2 = false negative, 3 = both overlap.

    Uses the optimal one-to-one matching of :func:`evaluate` (and :func:`match_objects`), so
    the marked objects are the table's ``fp`` and ``fn`` at that threshold.

    Parameters
    ----------
    ground_truth, prediction : (M, N[, P]) or (T, M, N[, P]) arrays of int or bool, same shape
        Instance labels (0 = background); 0/1 masks are split into connected components
        (see ``label_masks`` of :func:`evaluate`).
    iou_threshold : float
        IoU at which a pair matches, in (0, 1].
    time_axis : int, optional
        Each plane along this axis is a separate frame (objects never match across frames).
    label_masks : bool
        See :func:`evaluate`.

    Returns
    -------
    errors : uint8 ndarray, shape of the inputs
        ``FALSE_POSITIVE`` (1) on unmatched predicted objects, ``FALSE_NEGATIVE`` (2) on
        unmatched ground-truth objects, ``BOTH`` (3) where they overlap, else 0.
    n_fp, n_fn : int
        Numbers of false-positive and false-negative objects (summed over frames).

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[1, 1, 0, 2, 2, 0]]); pred = np.array([[1, 1, 0, 0, 0, 3]])
    >>> errors, n_fp, n_fn = error_map(truth, pred)
    >>> errors.tolist(), n_fp, n_fn
    ([[0, 0, 0, 2, 2, 1]], 1, 1)
    """
    truth, pred = _pair_inputs(ground_truth, prediction)
    (t,) = _check_thresholds(iou_threshold, time_axis=time_axis, label_masks=label_masks)
    frames = []
    for a, b in _frames(truth, pred, time_axis):
        a, b, n_true, n_pred, (rows, cols, iou, _, _) = _paired_instances(a, b, label_masks)
        mr, mc, _ = _match_at(rows, cols, iou, t, n_true, n_pred)
        frames.append(_errors(a, b, mr, mc, n_true, n_pred))
    if time_axis is None:
        return frames[0]
    errors = np.moveaxis(np.stack([f[0] for f in frames]), 0, time_axis)
    return errors, sum(f[1] for f in frames), sum(f[2] for f in frames)


def pixel_scores(ground_truth, prediction):
    """Dice and IoU of the foregrounds (all non-zero pixels) of two label images or masks.

    Parameters
    ----------
    ground_truth, prediction : (M, N[, ...]) array of int or bool
        Label images or binary masks of the same shape; any non-zero value is foreground.

    Returns
    -------
    scores : dict
        ``dice = 2 |G & P| / (|G| + |P|)``, ``iou = |G & P| / |G | P|`` (NaN when both are
        empty), and the pixel counts ``intersection``, ``true``, ``pred``.

    References
    ----------
    .. [1] Dice, "Measures of the amount of ecologic association between species", Ecology
       26, 297-302 (1945).

    Examples
    --------
    >>> import numpy as np
    >>> g = np.zeros((4, 4), bool); g[:2] = True
    >>> p = np.zeros((4, 4), bool); p[1:3] = True
    >>> scores = pixel_scores(g, p)
    >>> float(scores["dice"]), round(float(scores["iou"]), 4)
    (0.5, 0.3333)
    """
    truth, pred = _checked_pair(ground_truth, prediction)
    g = truth != 0
    p = pred != 0
    stats = [(g & p).sum(), g.sum(), p.sum(), truth.min(), pred.min()]
    if is_dask(g) or is_dask(p):
        import dask

        stats = dask.compute(*stats)
    both, n_true, n_pred, *lows = (int(v) for v in stats)
    for name, low in zip(("ground_truth", "prediction"), lows, strict=True):
        if low < 0:  # as evaluate and count_cells: a negative id is not an object
            raise ValueError(f"{name} holds negative values; labels must be >= 0")
    d = _pixel_dict(both, n_true, n_pred)
    return {
        "dice": d["pixel_dice"],
        "iou": d["pixel_iou"],
        "intersection": d["pixel_intersection"],
        "true": d["pixel_true"],
        "pred": d["pixel_pred"],
    }
