"""Every option of every stage, stated once: default, allowed values, range, units and help.

One frozen dataclass per stage (:class:`ThresholdOptions`, :class:`UNetOptions`,
:class:`CountOptions`, :class:`EvaluateOptions`, :class:`TrainOptions`; :class:`BatchOptions`
for a batch run). Each field is declared with :func:`option`, which records an :class:`Option`
in the field's metadata; :func:`options_of` returns them in declaration order. The stage
classes check every field when they are built, so the core functions (which build one from
their keyword arguments), the settings JSON (:class:`napari_binseg.PipelineSettings` is their
composition), the widgets (forms built from :func:`options_of`) and the command line (flags
built from :func:`options_of`) share one range and one message per option.

This module imports nothing heavy (no torch, napari or Qt).

Examples
--------
>>> ThresholdOptions(sigma=2).sigma
2
>>> ThresholdOptions(sigma=-1)
Traceback (most recent call last):
...
ValueError: threshold.sigma ('auto' or px) must be >= 0 (px), got -1
>>> [o.name for o in options_of(EvaluateOptions)]
['thresholds', 'time_axis', 'label_masks']
"""

import dataclasses
import functools
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

from .axes import AXES

#: Torch devices: "auto" picks cuda, then mps, then the CPU.
DEVICES = ("auto", "cpu", "cuda", "mps")
#: Units of one global threshold: the whole array, each 2D plane, or each time point.
SCOPES = ("image", "slice", "frame")
#: Neighbourhoods of connected components: rank 1..ndim, or 4/8 (2D) and 6/18/26 (3D).
CONNECTIVITIES = (1, 2, 3, 4, 6, 8, 18, 26)
#: Threshold methods of :func:`napari_binseg.threshold`.
THRESHOLD_METHODS = (
    "otsu",
    "li",
    "yen",
    "triangle",
    "isodata",
    "mean",
    "minimum",
    "multiotsu",
    "manual",
)
#: Segmentation methods of the pipeline: a binary global threshold or the U-Net.
PIPELINE_METHODS = tuple(m for m in THRESHOLD_METHODS if m != "multiotsu") + ("unet",)
#: Numeric precision of the U-Net ("auto": bfloat16 on CPUs with AMX, else float32).
PRECISIONS = ("auto", "float32", "bfloat16")
#: U-Net backends ("auto": OpenVINO on the CPU when installed, else torch).
BACKENDS = ("auto", "torch", "openvino")
#: How the 2D U-Net segments a z-stack (``napari_binseg.unet.volume``).
VOLUME_MODES = ("accurate", "fast")
#: Network presets of training (``unet.training.ARCHITECTURES`` holds their definitions).
ARCHITECTURES = ("mobile", "compact", "default", "large", "efficientnet-b0")
#: Training losses.
LOSSES = ("dice+ce", "dice", "ce", "focal")
#: Training augmentations.
AUGMENTATIONS = ("scale", "rotations", "flips", "blur", "intensity", "gamma", "noise")
#: IoU thresholds of :func:`napari_binseg.evaluate` (0.5, 0.55, ..., 0.95).
DEFAULT_THRESHOLDS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

_KIND_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


@dataclass(frozen=True)
class Option:
    """One option of a stage: what the widgets, the CLI, the JSON and the checks know of it.

    Attributes
    ----------
    name : str
        The field name (and JSON key; the CLI flag is ``--name-with-dashes``).
    default : object
        Default value.
    help : str
        One sentence: tooltip, ``--help`` text and documentation.
    label : str
        Short widget label.
    kind : type
        ``bool``, ``int``, ``float`` or ``str`` (of each item when ``multiple``).
    choices : tuple, optional
        Allowed values. For a number option: extra non-numeric values allowed besides numbers
        (``"auto"`` for a diameter); for a bool option: extra values besides true/false.
    low, high : float, optional
        Range of a number; ``low_open``/``high_open`` exclude the bound itself.
    nullable : bool
        ``None`` (JSON null) is allowed; ``none_label`` says what it means to a user ("auto",
        "off", "none"); ``zero_is_none``: the widget and CLI show ``None`` as 0 ("0 = auto").
    first : float, optional
        The first number a widget offers after a word: one step up from the none word of a
        ``zero_is_none`` option, the start of the number box of a number-or-word option.
        Without it, the lowest number (0.01 for a probability: a value nobody means).
    units : str, optional
        ``"px"``, ``"px²"``, ``"µm"``, ... or ``"px|µm"`` when it follows the calibration.
    advanced : bool
        Shown in the widget's collapsible "advanced" section.
    multiple : bool
        A sequence of values (a tuple), each checked as above; ``choices`` then lists the
        values the sequence may hold.
    accepts : tuple of type
        Further types taken as they are (a network dict for ``architecture``, a ``Path``).
    expect : str, optional
        Wording of the allowed values in messages, when the generic one says it badly.
    """

    name: str
    default: object
    help: str
    label: str
    kind: type
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    none_label: str | None = None
    zero_is_none: bool = False
    first: float | None = None
    units: str | None = None
    advanced: bool = False
    multiple: bool = False
    accepts: tuple = ()
    expect: str | None = None

    @property
    def special(self):
        """Non-numeric values a number option allows (``("auto",)``), else ``()``."""
        if self.kind in (int, float, bool) and self.choices:
            return tuple(c for c in self.choices if isinstance(c, str))
        return ()

    def _where(self, section):
        where = f"{section}.{self.name}" if section else self.name
        if self.kind in (int, float) and self.special:
            alternatives = [repr(c) for c in self.special] + ["null"] * self.nullable
            unit = self.units.split("|")[0] if self.units else "a number"
            where += f" ({', '.join(alternatives)} or {unit})"
        return where

    def check(self, value, section=None):
        """Return ``value`` (numpy scalars as Python ones, sequences as tuples) if allowed.

        Raises
        ------
        ValueError
            ``"section.name must be ..., got value"``.
        """
        where = self._where(section)
        if value is None:
            if self.nullable:
                return None
            raise ValueError(f"{where} must be {self._expected()}, got None")
        if not self.multiple:
            return self._check_one(value, where)
        if isinstance(value, (str, bytes, dict)) or not hasattr(value, "__iter__"):
            items = {bool: "true/false values", int: "integers", float: "numbers", str: "strings"}
            raise ValueError(f"{where} must be a list of {items[self.kind]}, got {value!r}")
        values = tuple(value)
        if self.choices is not None:
            unknown = sorted({str(v) for v in values if v not in self.choices})
            if unknown:
                what = self.expect or "value(s)"
                raise ValueError(
                    f"{where}: unknown {what} {unknown}; choose from {tuple(self.choices)}"
                )
            return values
        return tuple(self._check_one(v, where) for v in values)

    def _expected(self):
        if self.expect and not self.multiple:
            return self.expect
        if self.choices is not None and self.kind is str:
            return f"one of {tuple(self.choices)}"
        return _KIND_WORDS[self.kind]

    def _check_one(self, value, where):
        got = f", got {value!r}"
        if isinstance(value, self.accepts) and self.accepts:
            return value
        if self.kind is bool:
            if isinstance(value, bool) or value in self.special:
                return bool(value) if isinstance(value, bool) else value
            if self.special:
                extra = ", ".join(repr(c) for c in self.special)
                raise ValueError(f"{where} must be true, false or {extra}{got}")
            raise ValueError(f"{where} must be true or false{got}")
        if self.kind is str:
            if not isinstance(value, str) or (self.choices is None and not value):
                raise ValueError(f"{where} must be {self._expected()}{got}")
            if self.choices is not None and value not in self.choices:
                raise ValueError(f"{where} must be {self._expected()}{got}")
            return value
        # numbers
        if isinstance(value, str) and value in self.special:
            return value
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where} must be {self.expect or _KIND_WORDS[self.kind]}{got}")
        if hasattr(value, "item"):  # numpy scalar: a Python number for JSON
            value = value.item()
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite{got}")
        if self.kind is int:
            if int(value) != value:
                raise ValueError(f"{where} must be an integer{got}")
            value = int(value)
        numeric = tuple(c for c in self.choices or () if not isinstance(c, str))
        if numeric and value not in numeric:
            allowed = numeric + ((None,) if self.nullable else ())
            raise ValueError(f"{where} must be one of {allowed}{got}")
        unit = f" ({self.units.split('|')[0]})" if self.units else ""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            if self.kind is int and self.low == 1 and not self.low_open:
                raise ValueError(f"{where} must be a positive integer{got}")
            word = "an integer " if self.kind is int else ""
            sign = ">" if self.low_open else ">="
            raise ValueError(f"{where} must be {word}{sign} {self.low:g}{unit}{got}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            word = "an integer " if self.kind is int else ""
            sign = "<" if self.high_open else "<="
            raise ValueError(f"{where} must be {word}{sign} {self.high:g}{unit}{got}")
        return value

    def describe(self):
        """The allowed values in words, for help texts: ``"0 <= x < 1 (px)"`` and the like."""
        parts = []
        if self.choices is not None and self.kind is str:
            parts.append(", ".join(map(str, self.choices)))
        if self.low is not None and self.high is not None:
            lo = f"{self.low:g} {'<' if self.low_open else '<='} "
            parts.append(f"{lo}x {'<' if self.high_open else '<='} {self.high:g}")
        elif self.low is not None:
            parts.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        elif self.high is not None:
            parts.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        if self.units:
            parts.append(self.units.replace("|", " or "))
        return "; ".join(parts)


def option(default, help, *, kind=None, label=None, **details):
    """A dataclass field holding an :class:`Option` in its metadata (``"option"``).

    ``kind`` defaults to the type of ``default``; ``label`` to the name with spaces. Other
    keywords are :class:`Option` attributes.
    """
    if kind is None:
        sample = default[0] if isinstance(default, tuple) and default else default
        kind = type(sample)
    if kind not in _KIND_WORDS:
        raise TypeError(f"option kind must be bool, int, float or str, got {kind!r}")
    meta = {"option": dict(help=help, kind=kind, label=label, **details)}
    return field(default=default, metadata=meta)


@functools.cache
def options_of(cls):
    """The :class:`Option` of every field of a stage class, in declaration order."""
    out = []
    for f in dataclasses.fields(cls):
        spec = f.metadata.get("option")
        if spec is None:
            continue
        spec = dict(spec)
        label = spec.pop("label") or f.name.replace("_", " ")
        out.append(Option(name=f.name, default=f.default, label=label, **spec))
    return tuple(out)


class StageOptions:
    """Shared behaviour of the stage classes: checks, ``replace``, dict round trip."""

    #: Name of the stage in messages and in the settings JSON.
    section = ""

    def __post_init__(self):
        for opt in options_of(type(self)):
            object.__setattr__(self, opt.name, opt.check(getattr(self, opt.name), self.section))
        self._check_together()

    def _check_together(self):
        """Checks between fields (after each field passed its own)."""

    def replace(self, **changes):
        """A copy with ``changes``, checked."""
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Plain JSON types: tuples as lists, paths as strings."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Path):
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data):
        """Options from :meth:`to_dict`'s dict; missing keys take their defaults.

        Raises
        ------
        ValueError
            Not a dict, an unknown key (named with its section) or a bad value.
        """
        if not isinstance(data, dict):
            raise ValueError(
                f"{cls.section} must be a JSON object (dict), got {type(data).__name__}"
            )
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(known), key=str)
        if unknown:
            raise ValueError(
                f"unknown setting {cls.section}.{unknown[0]}; known: {', '.join(sorted(known))}"
            )
        return cls(**data)


# --------------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class ThresholdOptions(StageOptions):
    """Options of :func:`napari_binseg.threshold` (the method is ``PipelineSettings.method``)."""

    section = "threshold"

    scope: str = option(
        "image",
        "One threshold for the whole image, one per 2D plane (slice) or one per time point.",
        choices=SCOPES,
    )
    value: float | None = option(
        None,
        "The threshold of the 'manual' method, in image intensities.",
        kind=float,
        nullable=True,
        none_label="none",
    )
    sigma: str | float = option(
        "auto",
        "Gaussian smoothing before thresholding, in pixels of the plane (0 = none; auto: "
        "1, 2 or 4 px on a noisy image, none on a clean one).",
        kind=float,
        choices=("auto",),
        first=1.0,
        low=0,
        high=100,
        units="px",
    )
    invert: bool = option(
        False, "Dark objects on a bright background: foreground is at or below the threshold."
    )
    fill_holes: bool = option(
        False, "Fill background regions enclosed by foreground in the mask.", advanced=True
    )
    min_size: int = option(
        0,
        "Remove mask objects of fewer pixels than this before counting (0 = keep all).",
        low=0,
        units="px",
        advanced=True,
    )
    clip: float | None = option(
        None,
        "Percentile above which intensities count as that percentile for Otsu, multi-Otsu and "
        "ISODATA, so a few saturated particles cannot pull the threshold up (e.g. 99).",
        kind=float,
        nullable=True,
        none_label="off",
        zero_is_none=True,
        low=50,
        first=99.0,
        high=100,
        units="%",
        advanced=True,
    )
    ignore_bright_outliers: bool = option(
        True,
        "Otsu and triangle: when at most 1% of the pixels lie above the threshold and "
        "the rest are clearly two classes, those few were bright debris: threshold the rest "
        "again.",
        advanced=True,
    )
    background: str | float | None = option(
        None,
        "Subtract an uneven background first (grey opening by a disc of this radius; auto: "
        "1.5 nucleus diameters, estimated; uneven: auto where the background measures uneven "
        "against the nuclei, else off, and off for the manual method; it can misjudge small "
        "crops that are mostly background).",
        kind=float,
        choices=("auto", "uneven"),
        nullable=True,
        none_label="off",
        first=30.0,
        low=0,
        low_open=True,
        units="px",
        advanced=True,
    )


@dataclass(frozen=True)
class UNetOptions(StageOptions):
    """Options of :func:`napari_binseg.segment`."""

    section = "unet"

    model: str = option(
        "nuclei",
        "'nuclei' (the bundled model) or the path of a model folder or file.",
        expect="'nuclei' or a model path",
        accepts=(Path,),
    )
    device: str = option(
        "auto", "Where the network runs: auto picks cuda, then mps, then the CPU.", choices=DEVICES
    )
    tile_size: int = option(
        1024,
        "Side of the square tiles the image is cut into for the network.",
        low=32,
        units="px",
        advanced=True,
    )
    overlap: float = option(
        0.25,
        "Share of a tile overlapping its neighbours.",
        low=0,
        high=1,
        high_open=True,
        advanced=True,
    )
    batch_size: int = option(4, "Tiles per network call.", low=1, advanced=True)
    prob_threshold: float | None = option(
        None,
        "Foreground probability above which a pixel belongs to a nucleus; model: the model's "
        "own (postprocess.prob_threshold of its config.json, 0.5 for the bundled model).",
        kind=float,
        label="probability threshold",
        nullable=True,
        none_label="model",
        zero_is_none=True,
        first=0.5,
        low=0,
        high=1,
        low_open=True,
        high_open=True,
    )
    min_confidence: float | None = option(
        None,
        "Objects whose mean foreground probability is under this are removed (0 keeps "
        "every object); images and time series only: a z-stack keeps all its 3D objects. "
        "model: the model's own (postprocess.min_confidence of its config.json, 0.85 for the "
        "bundled model, 0 where the config has none).",
        kind=float,
        label="min object confidence",
        nullable=True,
        none_label="model",
        low=0,
        high=1,
        high_open=True,
        advanced=True,
    )
    diameter: str | float | None = option(
        "auto",
        "Nucleus diameter: 'auto' measures it, a number rescales to the model's nucleus size, "
        "none keeps the pixel size.",
        kind=float,
        choices=("auto",),
        nullable=True,
        none_label="none",
        low=0,
        low_open=True,
        units="px",
    )
    mode: str = option(
        "accurate",
        "How a z-stack is segmented: accurate runs the network on the XY, XZ and YZ planes "
        "of near-isotropic voxels; fast runs it plane by plane and links the planes.",
        label="3D mode",
        choices=VOLUME_MODES,
    )
    precision: str = option(
        "auto",
        "Numeric precision of the network: auto uses bfloat16 on CPUs with AMX, else float32.",
        choices=PRECISIONS,
        advanced=True,
    )
    backend: str = option(
        "auto",
        "Inference backend: auto uses OpenVINO on the CPU when installed, else torch.",
        choices=BACKENDS,
        advanced=True,
    )


@dataclass(frozen=True)
class CountOptions(StageOptions):
    """Options of :func:`napari_binseg.count_cells` (``spacing`` comes from the image)."""

    section = "count"

    connectivity: int | None = option(
        None,
        "Neighbourhood of connected components: 1 (faces) to ndim, or 4/8 (2D), 6/18/26 (3D).",
        kind=int,
        choices=CONNECTIVITIES,
        nullable=True,
        none_label="full",
        zero_is_none=True,
        advanced=True,
    )
    split_touching: bool | str = option(
        True,
        "Split touching nuclei by a distance watershed; 'intensity' also follows dark valleys "
        "of the image.",
        choices=(True, False, "intensity"),
        label="split touching",
    )
    min_diameter: float | None = option(
        None,
        "Smallest nucleus diameter: split pieces narrower than this are merged back "
        "(auto: a fifth of the typical nucleus diameter).",
        kind=float,
        nullable=True,
        none_label="auto",
        zero_is_none=True,
        first=5.0,
        low=0,
        units="px|µm",
        advanced=True,
    )
    diameter: float | None = option(
        None,
        "Typical nucleus diameter; the minimum size and the split follow it "
        "(auto: estimated from the mask).",
        kind=float,
        nullable=True,
        none_label="auto",
        zero_is_none=True,
        first=10.0,
        low=0,
        low_open=True,
        units="px|µm",
    )
    min_size: float | None = option(
        None,
        "Smallest object kept, area (2D) or volume (3D); auto = a tenth of a nucleus of the "
        "typical diameter.",
        kind=float,
        nullable=True,
        none_label="auto",
        low=0,
        units="px|µm",
    )
    max_size: float | None = option(
        None,
        "Largest object kept, area (2D) or volume (3D).",
        kind=float,
        nullable=True,
        none_label="no limit",
        zero_is_none=True,
        first=100000.0,
        low=0,
        units="px|µm",
    )
    exclude_border: bool = option(
        False,
        "Drop objects touching the image border; in a z-stack also the first and last "
        "planes (a thin stack cuts most nuclei there).",
    )
    fill_holes: bool = option(True, "Fill holes enclosed by one object.")
    time_axis: int | None = option(
        None,
        "Axis of a time series; each frame is counted on its own (none = no time axis).",
        kind=int,
        nullable=True,
        none_label="none",
        advanced=True,
    )

    def _check_together(self):
        if (
            self.max_size is not None
            and self.min_size is not None
            and self.max_size < self.min_size
        ):
            raise ValueError(
                f"count.max_size must be >= {self.min_size:g} (count.min_size), "
                f"got {self.max_size!r}"
            )


@dataclass(frozen=True)
class EvaluateOptions(StageOptions):
    """Options of :func:`napari_binseg.evaluate`."""

    section = "evaluate"

    thresholds: tuple = option(
        DEFAULT_THRESHOLDS,
        "IoU thresholds at which objects match.",
        kind=float,
        multiple=True,
        low=0,
        low_open=True,
        high=1,
    )
    time_axis: int | None = option(
        None,
        "Score each plane along this axis as a separate frame (time series).",
        kind=int,
        nullable=True,
        none_label="none",
    )
    label_masks: bool = option(
        True, "Split 0/1 images into connected components (else each is one object)."
    )

    def _check_together(self):
        if not self.thresholds:
            raise ValueError("evaluate.thresholds must be a non-empty list of numbers, got ()")


@dataclass(frozen=True)
class TrainOptions(StageOptions):
    """Options of a training run (``napari_binseg.TrainConfig``)."""

    section = "train"

    init: str | None = option(
        "nuclei",
        "Model whose weights start the run: 'nuclei' (fine-tune the bundled model), a model "
        "folder, or none (from scratch).",
        kind=str,
        nullable=True,
        none_label="from scratch",
        accepts=(Path,),
        expect="'nuclei', a model folder or None",
    )
    architecture: str | dict | None = option(
        None,
        "Network preset (or a MONAI network dict); none: the network of init, else default.",
        kind=str,
        choices=ARCHITECTURES,
        nullable=True,
        none_label="from init",
        accepts=(dict,),
    )
    loss: str = option("dice+ce", "Training loss.", choices=LOSSES, advanced=True)
    epochs: int = option(20, "Validation and a checkpoint after every epoch.", low=1)
    steps_per_epoch: int = option(25, "Batches per epoch.", low=1)
    minutes: float | None = option(
        None,
        "Time budget in minutes from the start, a fine-tune's scoring of its starting model "
        "included: training stops at it.",
        kind=float,
        nullable=True,
        none_label="none",
        zero_is_none=True,
        first=30.0,
        low=0,
        low_open=True,
    )
    lr: float = option(
        5e-4,
        "Peak learning rate of AdamW (warm-up, then cosine decay).",
        label="learning rate",
        low=0,
        high=1,
        low_open=True,
        high_open=True,
        advanced=True,
    )
    patch_size: int = option(
        256,
        "Side of the square training crops, a multiple of the network's divisor.",
        low=32,
        units="px",
        advanced=True,
    )
    batch_size: int = option(4, "Crops per training step.", low=1, advanced=True)
    augment: tuple = option(
        AUGMENTATIONS,
        "Augmentations applied to the training crops.",
        choices=AUGMENTATIONS,
        multiple=True,
        expect="augmentation(s)",
        advanced=True,
    )
    val_fraction: float = option(
        0.2,
        "Share of the annotated planes held out for validation.",
        label="validation fraction",
        low=0,
        high=1,
        high_open=True,
        advanced=True,
    )
    device: str = option(
        "auto", "Where training runs: auto picks cuda, then mps, then the CPU.", choices=DEVICES
    )
    seed: int = option(0, "Random seed.", low=0, advanced=True)
    threads: int | None = option(
        None,
        "torch CPU threads.",
        kind=int,
        nullable=True,
        none_label="torch's setting",
        zero_is_none=True,
        low=1,
        advanced=True,
    )


@dataclass(frozen=True)
class BatchOptions(StageOptions):
    """How a batch of files runs (``napari-binseg segment``, :func:`segment_files`)."""

    section = "batch"

    max_memory_mb: float = option(
        4096.0,
        "Peak memory one input may take in memory (the estimate of its whole run: about 14 "
        "bytes per pixel for a classic count of an image, 28 for a z-stack with splitting, "
        "50 for the U-Net); larger inputs run in chunks, to zarr.",
        low=0,
        low_open=True,
        units="MB",
    )
    chunk_mb: float = option(
        64.0,
        "Input bytes per chunk of a chunked run.",
        low=0,
        low_open=True,
        units="MB",
    )


#: The axes of a stack (``None``: from the file, else the default for its ndim).
AXES_OPTION = Option(
    name="axes",
    default=None,
    help="What the axes of a stack are: YX, ZYX (z-stack), TYX (time series) or TZYX; "
    "none reads them from the file, else an unlabeled 3D stack is a z-stack.",
    label="stack axes",
    kind=str,
    choices=AXES,
    nullable=True,
    none_label="auto",
)
