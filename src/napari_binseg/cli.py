"""Command line: ``napari-binseg COMMAND ...``.

A thin dispatcher over the core functions. Each subcommand is a function that adds its parser
to the ``COMMANDS`` registry's subparsers and stores its handler as ``func``; a handler returns
the exit code and raises :class:`CliError` for bad input, which ``main`` prints as one line
(``napari-binseg evaluate: error: ...``) with exit code 2. To add a subcommand, write
``_add_<name>(subparsers)`` and append it to ``COMMANDS``.
"""

import argparse
import sys
from pathlib import Path

from .io import TIFF_EXTENSIONS, pair_files, source_name


class CliError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


# --- evaluate -----------------------------------------------------------------------------------


def _parse_thresholds(values):
    out = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                out.append(float(part))
            except ValueError:
                raise CliError(f"--thresholds: {part!r} is not a number") from None
    return out


def run_evaluate(args):
    """Evaluate prediction files against ground truth; print tables, optionally write CSV."""
    import pandas as pd

    from .evaluation import DEFAULT_THRESHOLDS, aggregate, evaluate
    from .io import imread

    thresholds = _parse_thresholds(args.thresholds) if args.thresholds else DEFAULT_THRESHOLDS
    try:
        pairs = pair_files(args.pred, args.gt, names=("prediction", "ground truth"))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    tables, pooled = [], []
    for name, pred_path, gt_path in pairs:
        try:
            pred, _ = imread(pred_path)
            truth, _ = imread(gt_path)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if pred.shape != truth.shape:
            raise CliError(
                f"{name}: prediction {pred_path.name} has shape {pred.shape} but ground truth "
                f"{gt_path.name} has shape {truth.shape}"
            )
        try:
            df = evaluate(
                truth,
                pred,
                thresholds=thresholds,
                time_axis=args.time_axis,
                label_masks=not args.no_label_masks,
            )
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
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(args.csv, index=False)
        print(f"wrote {args.csv}")
    return 0


def _format(df):
    shown = [c for c in df.columns if c not in ("n_true", "n_pred", "file")]
    return df[shown].to_string(index=False, float_format=lambda v: f"{v:.3f}")


def _add_evaluate(subparsers):
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
    p.add_argument(
        "--thresholds",
        nargs="+",
        metavar="T",
        help="IoU thresholds (default 0.5 0.55 ... 0.95); '0.5,0.75' works too",
    )
    p.add_argument(
        "--time-axis",
        type=int,
        default=None,
        metavar="AXIS",
        help="evaluate each plane along this axis as a separate frame (time series)",
    )
    p.add_argument(
        "--no-label-masks",
        action="store_true",
        help="take 0/1 images as one object each instead of splitting them into components",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print only the pooled table")
    p.set_defaults(func=run_evaluate)


# --- segment ------------------------------------------------------------------------------------


def find_inputs(items):
    """TIFF files and zarr stores named by files, folders (not recursive) or glob patterns.

    Raises
    ------
    CliError
        A name that matches nothing, or two inputs whose outputs would have the same name.
    """
    import glob

    def usable(p):
        return (p.is_file() and p.suffix.lower() in TIFF_EXTENSIONS) or (
            p.is_dir() and p.suffix.lower() == ".zarr"
        )

    found = []
    for item in items:
        path = Path(item)
        if path.is_dir() and path.suffix.lower() != ".zarr":
            found += sorted(p for p in path.iterdir() if usable(p))
        elif path.exists():
            found.append(path)
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(item)))]
            if not matches:
                raise CliError(f"{item} does not exist")
            found += [p for p in matches if usable(p)]
    if not found:
        raise CliError("no .tif/.tiff files or .zarr stores in the given inputs")
    unique, names = [], {}
    for p in found:
        if p.resolve() in (q.resolve() for q in unique):
            continue
        name = source_name(p)
        if name in names:
            raise CliError(f"{names[name]} and {p} would write the same outputs ({name}_labels)")
        names[name] = p
        unique.append(p)
    return unique


def _read_settings(path):
    """Settings from a widget's settings file or from a previous run's params.json."""
    import json

    from .pipeline import PipelineSettings

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CliError(f"cannot read --settings {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise CliError(f"--settings {path} is not valid JSON: {exc}") from None
    try:
        return PipelineSettings.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise CliError(f"--settings {path}: {exc}") from None


def _diameter(text):
    """``--diameter``: ``"auto"``, ``"none"`` or a positive number of pixels."""
    if text.lower() in ("auto", "none"):
        return text.lower()
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, none or pixels, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"diameter must be a positive number, got {text!r}")
    return value


def _settings_from_args(args):
    from dataclasses import replace

    from .pipeline import PipelineSettings

    try:
        settings = PipelineSettings()
        if args.settings:
            settings = _read_settings(args.settings)
        sections = {
            "threshold": {"scope": args.scope, "value": args.value, "sigma": args.sigma},
            "unet": {"model": args.model, "device": args.device, "tile_size": args.tile_size},
            "count": {
                "min_size": args.min_size,
                "max_size": args.max_size,
                "split_touching": False if args.no_split else None,
                "fill_holes": False if args.no_fill_holes else None,
                "exclude_border": True if args.exclude_border else None,
            },
        }
        changes = {
            name: replace(
                getattr(settings, name), **{k: v for k, v in opts.items() if v is not None}
            )
            for name, opts in sections.items()
        }
        if args.diameter is not None:
            diameter = None if args.diameter == "none" else args.diameter
            changes["unet"] = replace(changes["unet"], diameter=diameter)
        return replace(settings, method=args.method or settings.method, **changes)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _progress_bar(done, total, name, width=30):
    filled = int(width * done / max(total, 1))
    bar = "#" * filled + "-" * (width - filled)
    print(f"\r[{bar}] {done}/{total} {name[:40]:<40}", end="", file=sys.stderr, flush=True)


def _write_atomic(path, write):
    partial = path.with_name(f".partial-{path.name}")
    write(partial)
    partial.replace(path)


def _collect_tables(inputs, out):
    """DIR/objects.csv and DIR/counts.csv from the per-file tables of every finished input."""
    import pandas as pd

    from .pipeline import output_names

    objects, counts = [], []
    for p in inputs:
        names = output_names(source_name(p))
        o, c = out / "per_file" / names["objects"], out / "per_file" / names["counts"]
        if o.is_file() and c.is_file():
            objects.append(pd.read_csv(o).assign(file=p.name))
            counts.append(pd.read_csv(c).assign(file=p.name))
    for name, tables in (("objects.csv", objects), ("counts.csv", counts)):
        if tables:
            table = pd.concat(tables, ignore_index=True)
            table = table[["file"] + [col for col in table.columns if col != "file"]]
            _write_atomic(out / name, lambda p, t=table: t.to_csv(p, index=False))


def _done(path, out):
    from .pipeline import output_names

    names = output_names(source_name(path))
    labels = (out / names["tif"]).exists() or (out / names["zarr"]).exists()
    tables = all((out / "per_file" / names[k]).is_file() for k in ("objects", "counts"))
    return labels and tables


def run_segment(args):
    """Segment and count every input; returns 0 when all succeeded, 1 when some failed."""
    import contextlib
    import json

    from . import __version__
    from .pipeline import segment_file

    settings = _settings_from_args(args)
    inputs = find_inputs(args.inputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    params_path = out / "params.json"
    if params_path.is_file() and not args.overwrite:
        try:
            previous = json.loads(params_path.read_text(encoding="utf-8")).get("settings")
        except (ValueError, AttributeError):
            previous = None
        if previous != settings.to_dict():
            raise CliError(
                f"{out} holds results of other settings (see {params_path}); "
                "choose another --out or pass --overwrite"
            )
    params = {
        "napari_binseg": __version__,
        "command": ["napari-binseg", *map(str, args.argv)],
        "inputs": [str(p.resolve()) for p in inputs],
        "settings": settings.to_dict(),
        "max_memory_mb": args.max_memory_mb,
        "chunk_mb": args.chunk_mb,
    }
    _write_atomic(params_path, lambda p: p.write_text(json.dumps(params, indent=2) + "\n"))

    client = contextlib.nullcontext()
    if args.scheduler:
        from distributed import Client

        try:
            client = Client(args.scheduler, timeout=30)
        except OSError as exc:
            raise CliError(f"cannot reach the dask scheduler at {args.scheduler}: {exc}") from None
    failed, skipped, errors = [], 0, []
    with client:
        for i, path in enumerate(inputs):
            if not args.quiet:
                _progress_bar(i, len(inputs), path.name)
            if not args.overwrite and _done(path, out):
                skipped += 1
                continue
            try:
                segment_file(
                    path,
                    out,
                    settings,
                    max_memory=int(args.max_memory_mb * 2**20),
                    chunk_bytes=int(args.chunk_mb * 2**20),
                )
            except Exception as exc:  # one bad file must not stop the others
                failed.append(path)
                message = (
                    str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                )
                errors.append(f"napari-binseg segment: {path.name}: error: {message}")
        if not args.quiet:
            _progress_bar(len(inputs), len(inputs), "done")
            print(file=sys.stderr)
    for line in errors:
        print(line, file=sys.stderr)
    _collect_tables(inputs, out)
    ok = len(inputs) - len(failed)
    print(
        f"segmented {ok} of {len(inputs)} files into {out}"
        + (f" ({skipped} already done)" if skipped else "")
        + (f"; failed: {', '.join(p.name for p in failed)}" if failed else "")
    )
    return 1 if failed else 0


def _add_segment(subparsers):
    from .pipeline import PIPELINE_METHODS
    from .thresholding import SCOPES

    p = subparsers.add_parser(
        "segment",
        help="segment and count nuclei in many files",
        description=(
            "Threshold (or U-Net) and count every input: TIFF/OME-TIFF files, zarr stores, "
            "folders of them or glob patterns. Writes OUT/NAME_labels.tif (NAME_labels.zarr "
            "for inputs above --max-memory-mb, processed in chunks) with the input's pixel "
            "size, OUT/objects.csv, OUT/counts.csv and OUT/params.json. Finished files are "
            "skipped on a second run; a file that fails is reported and skipped. Exit code 0 "
            "when every file succeeded, 1 otherwise, 2 for bad arguments."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--settings", metavar="FILE", help="settings JSON saved by a widget (or params.json)"
    )
    p.add_argument("--method", choices=PIPELINE_METHODS, help="default otsu")
    g = p.add_argument_group("threshold options")
    g.add_argument("--scope", choices=SCOPES, help="one threshold per image, slice or frame")
    g.add_argument("--value", type=float, help="threshold of --method manual")
    g.add_argument("--sigma", type=float, help="Gaussian smoothing (pixels) before threshold")
    g = p.add_argument_group("U-Net options")
    g.add_argument("--model", help="'nuclei' (bundled) or a model file/folder")
    g.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"))
    g.add_argument("--tile-size", type=int)
    g.add_argument(
        "--diameter",
        type=_diameter,
        metavar="auto|none|PIXELS",
        help="nucleus diameter: 'auto' (default) rescales planes with small nuclei, a number "
        "rescales to the model's nucleus size, 'none' keeps the pixel size",
    )
    g = p.add_argument_group("count options")
    g.add_argument("--min-size", type=float, help="smallest object (area/volume, physical)")
    g.add_argument("--max-size", type=float, help="largest object")
    g.add_argument("--no-split", action="store_true", help="do not split touching nuclei")
    g.add_argument("--no-fill-holes", action="store_true", help="do not fill holes")
    g.add_argument("--exclude-border", action="store_true", help="drop objects on the border")
    g = p.add_argument_group("running")
    g.add_argument(
        "--max-memory-mb",
        type=float,
        default=1024,
        help="inputs larger than this run in chunks, to zarr (default 1024)",
    )
    g.add_argument("--chunk-mb", type=float, default=64, help="chunk size (default 64)")
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the chunked inputs on this dask.distributed scheduler",
    )
    g.add_argument("--overwrite", action="store_true", help="redo finished files")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_segment)


# --- dispatcher ---------------------------------------------------------------------------------

# --- demo ---------------------------------------------------------------------------------------


def run_demo(args):
    from .demo import main as demo_main

    return demo_main(args.out, headless=True if args.headless else None)


def _add_demo(subparsers):
    p = subparsers.add_parser(
        "demo",
        help="open napari with a sample and the widgets, or run the headless demo",
        description=(
            "With a display: open napari with the 2D nuclei sample and the plugin's widgets "
            "docked. Without one (or with --headless): threshold, count, segment with the "
            "bundled U-Net and evaluate the sample, writing labels, tables and scores to --out."
        ),
    )
    p.add_argument("--out", default="demo_output", help="output folder of the headless demo")
    p.add_argument("--headless", action="store_true", help="never open a window")
    p.set_defaults(func=run_demo)


# --- train --------------------------------------------------------------------------------------


def run_train(args):
    """Train or fine-tune a U-Net on two folders of images and labels; write a model folder."""
    import json

    from .unet.trainer import TrainConfig, export_bundle, read_pairs, train

    options = {}
    if args.config:
        try:
            options = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"--config: cannot read {args.config}: {exc}") from None
    given = {
        "architecture": args.architecture,
        "loss": args.loss,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "minutes": args.minutes,
        "lr": args.lr,
        "patch_size": args.patch_size,
        "batch_size": args.batch_size,
        "val_fraction": args.val_fraction,
        "device": args.device,
        "seed": args.seed,
        "threads": args.threads,
    }
    options |= {k: v for k, v in given.items() if v is not None}
    if args.from_scratch:
        options["init"] = None
    elif args.init:
        options["init"] = args.init
    if args.no_augment is not None:
        from .unet.training import AUGMENTATIONS

        off = {a for part in args.no_augment for a in part.replace(",", " ").split()}
        options["augment"] = [a for a in AUGMENTATIONS if a not in off] if off != {"all"} else []
    try:
        config = TrainConfig.from_dict(options)
        validation = None
        if args.validation_images or args.validation_labels:
            if not (args.validation_images and args.validation_labels):
                raise ValueError("give both --validation-images and --validation-labels")
            validation = read_pairs(args.validation_images, args.validation_labels)
        model, history = train(
            args.images,
            args.labels,
            config=config,
            validation=validation,
            out=args.out,
            resume=args.resume,
            log=lambda message: print(message, flush=True),
        )
        if args.bundle:
            export_bundle(args.out, args.bundle)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    best = model.config["training"]
    print(
        f"wrote {args.out} (best epoch at step {best['best_step']}, "
        f"validation F1@0.5 {best['best_val_f1']:.3f})"
        + (f"; MONAI bundle {args.bundle}" if args.bundle else "")
    )
    return 0


def _add_train(subparsers):
    from .unet.trainer import ARCHITECTURES
    from .unet.training import AUGMENTATIONS, LOSSES

    p = subparsers.add_parser(
        "train",
        help="train or fine-tune the U-Net on your annotated images",
        description=(
            "Fine-tune the bundled nuclei U-Net (default) or train one from scratch on two "
            "folders of TIFFs: images and integer instance labels with matching names "
            "(cells.tif with cells.tif or cells_labels.tif). Planes of a stack without labels "
            "are skipped. Writes OUT/model.safetensors, config.json and MODEL_CARD.md, which "
            "napari-binseg's U-Net widget and napari_binseg.load_model read, and a checkpoint "
            "in OUT/checkpoint (--resume OUT/checkpoint continues a run). Options left out "
            "take the --config file's values, else the defaults of napari_binseg.TrainConfig."
        ),
    )
    p.add_argument("--images", required=True, metavar="DIR", help="folder of image TIFFs")
    p.add_argument("--labels", required=True, metavar="DIR", help="folder of label TIFFs")
    p.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    p.add_argument("--validation-images", metavar="DIR", help="validation images (optional)")
    p.add_argument("--validation-labels", metavar="DIR", help="validation labels (optional)")
    p.add_argument("--config", metavar="JSON", help="TrainConfig options as a JSON file")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="MODEL", help="model to fine-tune (default: nuclei)")
    start.add_argument("--from-scratch", action="store_true", help="random initial weights")
    p.add_argument("--architecture", choices=list(ARCHITECTURES), help="network preset")
    p.add_argument("--loss", choices=list(LOSSES))
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps-per-epoch", type=int)
    p.add_argument("--minutes", type=float, help="time budget; stops earlier")
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--patch-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument(
        "--no-augment",
        nargs="+",
        metavar="AUG",
        help=f"augmentations to switch off ({', '.join(AUGMENTATIONS)}, or all)",
    )
    p.add_argument("--val-fraction", type=float, help="share of planes held out")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from OUT/checkpoint")
    p.add_argument("--bundle", metavar="DIR", help="also export a MONAI bundle folder")
    p.set_defaults(func=run_train)


COMMANDS = [_add_segment, _add_evaluate, _add_demo, _add_train]


def build_parser():
    """The ``napari-binseg`` argument parser with every registered subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="napari-binseg",
        description="Segment, count and measure nuclei; evaluate segmentations.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    """Entry point of the ``napari-binseg`` command; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.

    Examples
    --------
    >>> main(["--help"])  # doctest: +SKIP
    """
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"napari-binseg {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
