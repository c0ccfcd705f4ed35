"""``napari-binseg segment``: segment and count many files (:func:`..batch.segment_files`)."""

import argparse
import json
import sys
from pathlib import Path

from ..options import (
    AXES_OPTION,
    BatchOptions,
    CountOptions,
    ThresholdOptions,
    UNetOptions,
    options_of,
)
from . import _flags
from ._common import CliError


def _read_settings(path):
    """Settings from a widget's settings file or from a previous run's params.json."""
    from ..settings import PipelineSettings

    if Path(path).is_dir():
        raise CliError(f"--settings {path} is a folder, not a settings file")
    try:
        return PipelineSettings.from_json(Path(path))
    except ValueError as exc:
        message = str(exc)
        if message.startswith("cannot read settings file"):
            raise CliError(message.replace("settings file", "--settings", 1)) from None
        raise CliError(f"--settings {message}") from None


def _spacing(text):
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 2,0.5,0.5, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected one number per spatial axis")
    return values


def _axes(text):
    value = text.upper()
    if value not in AXES_OPTION.choices:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(AXES_OPTION.choices)}, got {text!r}"
        )
    return value


def _settings_from_args(args):
    from ..settings import PipelineSettings

    try:
        settings = _read_settings(args.settings) if args.settings else PipelineSettings()
        changes = {
            name: _flags.given(args, cls)
            for name, cls in (("threshold", ThresholdOptions), ("unet", UNetOptions),
                              ("count", CountOptions))
        }  # fmt: skip
        if changes["unet"].get("diameter") == "auto":
            changes["count"]["diameter"] = None  # the count estimates it too
        top = {}
        if getattr(args, "method", None):
            top["method"] = args.method
        if getattr(args, "axes", None):
            top["axes"] = args.axes
        return settings.replace(**top, **{k: v for k, v in changes.items() if v})
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _diameter_px(args):
    """The count's nucleus diameter in pixels: a number given to ``--diameter``, else the one
    a previous run's params.json (``--settings``) recorded, else None.

    A number is passed on in pixels, not as ``count.diameter``: that is in physical units on
    calibrated files, so :func:`..batch.segment_file` converts it per file.
    """
    given = getattr(args, _flags.dest("unet", "diameter"), "unset")
    if given == "unset" and args.settings:
        try:
            recorded = json.loads(Path(args.settings).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        given = recorded.get("diameter_px") if isinstance(recorded, dict) else None
    return float(given) if isinstance(given, int | float) else None


def _progress_bar(done, total, name, width=30):
    filled = int(width * done / max(total, 1))
    bar = "#" * filled + "-" * (width - filled)
    print(f"\r[{bar}] {done}/{total} {name[:40]:<40}", end="", file=sys.stderr, flush=True)


def run(args):
    """Segment and count every input; returns 0 when all succeeded, 1 when some failed."""
    from ..batch import segment_files
    from ..pipeline import background_note, outliers_note, smoothing_note

    settings = _settings_from_args(args)
    diameter_px = _diameter_px(args)

    def progress(done, total, name):
        if done < total:
            args.warning_lines.input(name)  # its warnings name it
        if not args.quiet:
            _progress_bar(done, total, name)
            args.warning_lines.open_line = True

    try:
        batch = BatchOptions(**_flags.given(args, BatchOptions))
        result = segment_files(
            args.inputs,
            args.out,
            settings,
            batch=batch,
            spacing=args.spacing,
            overwrite=args.overwrite,
            scheduler=args.scheduler,
            record={"command": ["napari-binseg", *map(str, args.argv)]},
            progress=progress,
            diameter_px=diameter_px,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        if not args.quiet:
            print(file=sys.stderr)
    for path, message in result.failed:
        print(f"napari-binseg segment: {path.name}: error: {message}", file=sys.stderr)
    given = diameter_px is not None or settings.count.diameter is not None
    source = "given" if given else "estimated"
    for path, (diameter, unit, pixels) in result.diameters.items():
        if diameter is not None and not args.quiet:
            size = f"{diameter:.1f} {unit}" + (f" = {pixels:.1f} px" if unit != "px" else "")
            print(f"{path.name}: nucleus diameter {size} ({source})")
        if path in result.outliers and not args.quiet:
            print(f"{path.name}: threshold {outliers_note(result.outliers[path])}")
        notes = (
            smoothing_note(*result.smoothing.get(path, (None, None)), settings.threshold.scope),
            background_note(*result.background.get(path, (None, None))),
        )
        for note in notes:
            if note and not args.quiet:
                print(f"{path.name}: threshold {note}")
    n, failed = len(result.inputs), result.failed
    print(
        f"segmented {n - len(failed)} of {n} files into {result.out}"
        + (f" ({len(result.skipped)} already done)" if result.skipped else "")
        + (f"; failed: {', '.join(p.name for p, _ in failed)}" if failed else "")
    )
    return 1 if failed else 0


def add(subparsers):
    from ..settings import PipelineSettings

    (method,) = (o for o in options_of(PipelineSettings) if o.name == "method")

    p = subparsers.add_parser(
        "segment",
        help="segment and count nuclei in many files",
        description=(
            "Threshold (or U-Net) and count every input: TIFF/OME-TIFF files, zarr stores, "
            "folders of them or glob patterns. Writes OUT/NAME_labels.tif (NAME_labels.zarr "
            "for inputs whose in-memory run would exceed --max-memory-mb, processed in "
            "chunks) with the input's pixel size, OUT/objects.csv, OUT/counts.csv and "
            "OUT/params.json. Finished files are skipped on a second run; a file that fails is "
            "reported and skipped; folders skip OUT and files named like its outputs. Exit "
            "code 0 when every file succeeded, 1 otherwise, 2 for bad arguments."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders or globs")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument(
        "--settings", metavar="FILE", help="settings JSON saved by a widget (or params.json)"
    )
    p.add_argument("--method", choices=method.choices, help=_flags.help_text(method))
    p.add_argument(
        "--axes",
        type=_axes,
        metavar="|".join(AXES_OPTION.choices),
        help="what the axes of every input are (default: the file's ImageJ/OME axes, else "
        "YX, ZYX for any 3D stack, TZYX)",
    )
    p.add_argument(
        "--spacing",
        type=_spacing,
        metavar="DZ,DY,DX",
        help="pixel size per spatial axis of every input (default: the file's)",
    )
    g = p.add_argument_group("threshold options")
    _flags.add_options(g, ThresholdOptions, prefixed=("fill_holes", "min_size"))
    g = p.add_argument_group("U-Net options")
    _flags.add_options(g, UNetOptions, skip=("diameter",))
    (diameter,) = (o for o in options_of(UNetOptions) if o.name == "diameter")
    g.add_argument(
        "--diameter",
        dest=_flags.dest("unet", "diameter"),
        type=_flags.number_type(diameter),
        metavar="auto|none|PIXELS",
        default=argparse.SUPPRESS,
        help=_flags.help_text(diameter) + ". For every method, a number is also the count's "
        "typical diameter, in pixels of each file (the count's automatic sizes follow it); "
        "auto lets the count estimate it",
    )
    g = p.add_argument_group("count options")
    _flags.add_options(g, CountOptions, skip=("diameter",))
    g.add_argument(
        "--no-split",
        dest=_flags.dest("count", "split_touching"),
        action="store_const",
        const=False,
        default=argparse.SUPPRESS,
        help="do not split touching nuclei (same as --split-touching false)",
    )
    g = p.add_argument_group("running")
    _flags.add_options(g, BatchOptions)
    g.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the chunked inputs on this dask.distributed scheduler",
    )
    g.add_argument("--overwrite", action="store_true", help="redo finished files")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)
