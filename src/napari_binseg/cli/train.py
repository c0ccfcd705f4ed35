"""``napari-binseg train``: train or fine-tune the U-Net (:func:`napari_binseg.train`)."""

import warnings
from pathlib import Path

from ..options import AUGMENTATIONS, TrainOptions, options_of
from . import _flags
from ._common import CliError


def _read_config(path):
    from ..settings import load_json

    try:
        data = load_json(Path(path).read_text(encoding="utf-8"), f"--config {path}")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise CliError(f"--config: cannot read {path}: {reason}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if not isinstance(data, dict):
        raise CliError(
            f"--config {path} must hold a JSON object of training options, "
            f"got {type(data).__name__}"
        )
    return data


def run(args):
    """Train or fine-tune a U-Net on two folders of images and labels; write a model folder."""
    from ..unet.training import (
        StartingModelKept,
        TrainConfig,
        export_bundle,
        read_pairs,
        train,
    )

    options = _read_config(args.config) if args.config else {}
    options |= _flags.given(args, TrainOptions)
    if args.from_scratch:
        options["init"] = None
    elif args.init:
        options["init"] = args.init
    if args.no_augment is not None:
        off = {a for part in args.no_augment for a in part.replace(",", " ").split()}
        options["augment"] = [a for a in AUGMENTATIONS if a not in off] if off != {"all"} else []
    if args.resume and not Path(args.resume).exists():
        raise CliError(f"--resume {args.resume} does not exist")
    try:
        config = TrainConfig.from_dict(options)
        validation = None
        if args.validation_images or args.validation_labels:
            if not (args.validation_images and args.validation_labels):
                raise ValueError("give both --validation-images and --validation-labels")
            validation = read_pairs(args.validation_images, args.validation_labels)
        with warnings.catch_warnings():
            # The log prints it (a warning would repeat it with a source line).
            warnings.simplefilter("ignore", StartingModelKept)
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
    except (TypeError, ValueError) as exc:
        raise CliError(str(exc)) from None
    best = model.config["training"]
    if best.get("init_kept"):
        kept = "the starting model, unchanged: no epoch beat its validation F1@0.5"
        result = f"{kept} {best['best_val_f1']:.3f} by more than {best['init_margin']:.3f}"
    else:
        result = (
            f"best epoch at step {best['best_step']}, validation F1@0.5 {best['best_val_f1']:.3f}"
        )
    bundle = f"; MONAI bundle {args.bundle}" if args.bundle else ""
    print(f"wrote {args.out} ({result}){bundle}")
    return 0


def add(subparsers):
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
    (init,) = (o for o in options_of(TrainOptions) if o.name == "init")
    start.add_argument(
        "--init", metavar="MODEL", help=f"model to fine-tune (default {init.default})"
    )
    start.add_argument("--from-scratch", action="store_true", help="random initial weights")
    _flags.add_options(p, TrainOptions, skip=("init", "augment"))
    p.add_argument(
        "--no-augment",
        nargs="+",
        metavar="AUG",
        help=f"augmentations to switch off ({', '.join(AUGMENTATIONS)}, or all)",
    )
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue from OUT/checkpoint")
    p.add_argument("--bundle", metavar="DIR", help="also export a MONAI bundle folder")
    p.set_defaults(func=run)
