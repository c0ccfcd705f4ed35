"""``napari-binseg evaluate``: score predicted labels against ground truth."""

from pathlib import Path

from ..options import EvaluateOptions, options_of
from . import _flags
from ._common import CliError


def _parse_thresholds(values):
    out = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                out.append(float(part))
            except ValueError:
                raise CliError(f"--thresholds: {part!r} is not a number") from None
    return out


def _format(df):
    shown = [c for c in df.columns if c not in ("n_true", "n_pred", "file")]
    return df[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _read(path):
    from ..io import imread

    try:
        return imread(path)[0]
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None


def run(args):
    """Evaluate prediction files against ground truth; print tables, optionally write CSV."""
    import pandas as pd

    from ..evaluation import aggregate, evaluate
    from ..io import pair_files

    options = _flags.given(args, EvaluateOptions)
    if args.thresholds:
        options["thresholds"] = _parse_thresholds(args.thresholds)
    if args.csv and Path(args.csv).is_dir():
        raise CliError(f"--csv {args.csv} is a folder; name a file such as scores.csv")
    try:
        pairs = pair_files(args.pred, args.gt, names=("prediction", "ground truth"))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    tables, pooled = [], []
    for name, pred_path, gt_path in pairs:
        pred, truth = _read(pred_path), _read(gt_path)
        if pred.shape != truth.shape:
            raise CliError(
                f"{name}: prediction {pred_path.name} has shape {pred.shape} but ground truth "
                f"{gt_path.name} has shape {truth.shape}"
            )
        try:
            df = evaluate(truth, pred, **options)
        except ValueError as exc:
            raise CliError(f"{name}: {exc}") from None
        total = df[df["frame"] == "all"].drop(columns="frame") if "frame" in df else df
        total = total.reset_index(drop=True)
        total.attrs = dict(df.attrs)
        pooled.append(total)
        df = df.assign(pixel_dice=df.attrs["pixel_dice"], pixel_iou=df.attrs["pixel_iou"])
        tables.append(df.assign(file=name))
        if not args.quiet:
            print(f"== {name}  ({pred_path} vs {gt_path})")
            print(_format(df))
            print()
    if len(pairs) > 1:
        total = aggregate(pooled)
        total = total.assign(
            pixel_dice=total.attrs["pixel_dice"], pixel_iou=total.attrs["pixel_iou"]
        )
        print(f"== all {len(pairs)} files (pooled counts)")
        print(_format(total))
        tables.append(total.assign(file="all"))
    elif args.quiet:
        print(_format(tables[0]))
    if args.csv:
        out = pd.concat(tables, ignore_index=True)
        front = ["file"] + (["frame"] if "frame" in out else [])
        out = out[front + [c for c in out.columns if c not in front]]
        try:
            Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
            out.to_csv(args.csv, index=False)
        except OSError as exc:
            raise CliError(f"cannot write --csv {args.csv}: {exc.strerror or exc}") from None
        print(f"wrote {args.csv}")
    return 0


def add(subparsers):
    p = subparsers.add_parser(
        "evaluate",
        help="score predicted labels against ground truth",
        description=(
            "Match predicted and ground-truth objects one-to-one at IoU thresholds and print "
            "tp, fp, fn, precision, recall, F1, AP (tp / (tp + fp + fn)), mean matched IoU, "
            "panoptic quality and pixel Dice/IoU, per file and pooled over all files. PRED and "
            "GT are two TIFF files or two folders of TIFFs with matching names (a trailing "
            "_labels/_masks/_mask/_pred/_gt is ignored when pairing). Binary masks are split "
            "into connected components."
        ),
    )
    p.add_argument("pred", metavar="PRED", help="predicted labels: a TIFF file or a folder")
    p.add_argument("gt", metavar="GT", help="ground-truth labels: a TIFF file or a folder")
    p.add_argument("--csv", metavar="OUT", help="also write all rows to this CSV file")
    (opt,) = (o for o in options_of(EvaluateOptions) if o.name == "thresholds")
    d = opt.default
    p.add_argument(
        "--thresholds",
        nargs="+",
        metavar="T",
        help=f"{opt.help.rstrip('.')} (default {d[0]} {d[1]} ... {d[-1]}); '0.5,0.75' works too",
    )
    _flags.add_options(p, EvaluateOptions, skip=("thresholds",))
    p.add_argument("-q", "--quiet", action="store_true", help="print only the pooled table")
    p.set_defaults(func=run)
