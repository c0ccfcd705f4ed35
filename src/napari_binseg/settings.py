"""Pipeline settings: the stage options composed, and their JSON file format.

``PipelineSettings`` holds everything that decides a pipeline result: the segmentation method
(a global threshold or the U-Net), the options of each stage (:mod:`napari_binseg.options`)
and the axes of the stacks. The widgets save it, ``napari-binseg segment`` reads it and writes
it into ``params.json``. Files of every earlier version load: :func:`migrate_settings` brings
their dict to :data:`SETTINGS_VERSION` first.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .options import (
    AXES_OPTION,
    PIPELINE_METHODS,
    CountOptions,
    ThresholdOptions,
    UNetOptions,
    option,
    options_of,
)

#: Version of the settings JSON. 1: napari-binseg 0.1 (method, threshold, unet, count);
#: 2: adds ``axes``, ``unet.precision``/``unet.backend`` (their defaults are what 0.1 did),
#: ``unet.mode`` (z-stacks as volumes),
#: ``count.diameter``, and ``count.min_size`` null = automatic (from the nucleus size);
#: 3: adds ``threshold.ignore_bright_outliers`` (on by default; off for older files);
#: 4: ``unet.prob_threshold`` null = the model's own (the default; 0.5 for older files);
#: 5: ``threshold.sigma`` ``"auto"``: smoothing on noisy images (the default; 0 for older files),
#: ``threshold.background`` ``"uneven"``: subtraction on uneven backgrounds (a new word; off
#: stays the default);
#: 6: ``unet.min_confidence`` null = the model's own floor on an object's mean foreground
#: probability (the default; 0.85 for the bundled model), 0 (keep every object) for older files.
SETTINGS_VERSION = 6

#: Names of napari-binseg 0.1, kept for code that imports them.
ThresholdSettings = ThresholdOptions
UNetSettings = UNetOptions
CountSettings = CountOptions

_SECTIONS = {"threshold": ThresholdOptions, "unet": UNetOptions, "count": CountOptions}
#: Deepest nesting a settings dict may have (a JSON bomb of nested lists is refused early).
_MAX_DEPTH = 8


def _old_defaults(data, section, old, version):
    """``data`` as a dict of ``version``: the keys of ``section`` that the file does not set
    take ``old``, what the file's own version did (a section that is not a dict is left to
    the checks)."""
    data = dict(data)
    values = data.get(section)
    if values is None:
        values = {}
    if isinstance(values, dict):
        data[section] = {**old, **values}
    return {**data, "version": version}


def _from_v1(data):
    """Version 1 (0.1) -> 2: the new keys take their defaults; a count without ``min_size``
    keeps 0.1's default of 0 (version 2's default is automatic, from the nucleus size)."""
    return _old_defaults(data, "count", {"min_size": 0.0}, 2)


def _from_v2(data):
    """Version 2 -> 3: a file written before the bright-outlier rule thresholds as it did then
    (``threshold.ignore_bright_outliers`` false unless the file sets it)."""
    return _old_defaults(data, "threshold", {"ignore_bright_outliers": False}, 3)


def _from_v3(data):
    """Version 3 -> 4: a file written when the U-Net always ran at 0.5 unless told otherwise
    keeps 0.5 (``unet.prob_threshold`` null, the model's own, unless the file sets it)."""
    return _old_defaults(data, "unet", {"prob_threshold": 0.5}, 4)


def _from_v4(data):
    """Version 4 -> 5: a file written when the threshold smoothed only when told keeps no
    smoothing (``threshold.sigma`` 0 unless the file sets it; ``"auto"`` is the default)."""
    return _old_defaults(data, "threshold", {"sigma": 0.0}, 5)


def _from_v5(data):
    """Version 5 -> 6: a file written when the U-Net kept every object keeps them
    (``unet.min_confidence`` 0 unless the file sets it)."""
    return _old_defaults(data, "unet", {"min_confidence": 0.0}, 6)


#: ``version -> function`` that turns a dict of that version into the next version's.
MIGRATIONS = {1: _from_v1, 2: _from_v2, 3: _from_v3, 4: _from_v4, 5: _from_v5}


def _depth(value, limit):
    if limit < 0:
        return False
    if isinstance(value, dict):
        return all(_depth(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth(v, limit - 1) for v in value)
    return True


def _nesting(text):
    """Deepest nesting of ``[``/``{`` in JSON text (outside strings), without parsing it."""
    import re

    depth = deepest = 0
    # Strings first (with their escapes), so brackets inside them do not count.
    for token in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def load_json(text, where):
    """Parse JSON text of a settings or config file; refuse deep nesting before parsing.

    Raises
    ------
    ValueError
        Invalid JSON, or nesting deeper than a settings file ever needs (a JSON bomb would
        otherwise recurse deep into the parser).
    """
    if _nesting(text) > 4 * _MAX_DEPTH:
        raise ValueError(f"{where} is not valid JSON: nested too deeply")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = exc if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise ValueError(f"{where} is not valid JSON: {reason}") from None


def migrate_settings(data):
    """A settings dict of any supported version, brought to :data:`SETTINGS_VERSION`.

    Parameters
    ----------
    data : dict
        Settings as a file holds them, with or without ``version`` (missing: the current one).

    Returns
    -------
    dict
        A new dict without the ``version`` key.

    Raises
    ------
    ValueError
        A version that is not an integer from 1 to :data:`SETTINGS_VERSION`.

    Examples
    --------
    >>> migrate_settings({"version": 4, "method": "unet"})
    {'method': 'unet', 'threshold': {'sigma': 0.0}}
    """
    data = dict(data)
    version = data.pop("version", SETTINGS_VERSION)
    if isinstance(version, bool) or version not in range(1, SETTINGS_VERSION + 1):
        raise ValueError(
            f"settings version {version!r} is not supported (expected 1 to {SETTINGS_VERSION})"
        )
    while version < SETTINGS_VERSION:
        data = MIGRATIONS[version]({**data, "version": version})
        version = data.pop("version")
    return data


@dataclass(frozen=True)
class PipelineSettings:
    """Everything that decides a pipeline result, serializable to JSON.

    Parameters
    ----------
    method : str
        A threshold method of :data:`PIPELINE_METHODS` (``"otsu"``, ``"li"``, ...,
        ``"manual"`` with ``threshold.value``) or ``"unet"``.
    threshold : ThresholdOptions or dict
        Threshold options (used by the threshold methods).
    unet : UNetOptions or dict
        U-Net options (used by ``"unet"``).
    count : CountOptions or dict
        Counting options. With ``"unet"`` only ``min_size``, ``max_size`` and
        ``exclude_border`` apply: the network's instances are kept as they are.
    axes : str or None
        ``"YX"``, ``"ZYX"``, ``"TYX"`` or ``"TZYX"``; None: the file's axes, else the default
        for the image's dimensions (:func:`napari_binseg.axes.resolve_axes`).

    Raises
    ------
    ValueError
        An unknown method, section or key, or a value out of range; the message names it.

    Examples
    --------
    >>> s = PipelineSettings("li", count={"min_size": 20, "split_touching": False})
    >>> PipelineSettings.from_json(s.to_json()) == s
    True
    """

    method: str = option(
        "otsu",
        "Segmentation: a global threshold method, or the U-Net.",
        choices=PIPELINE_METHODS,
    )
    threshold: ThresholdOptions = field(default_factory=ThresholdOptions)
    unet: UNetOptions = field(default_factory=UNetOptions)
    count: CountOptions = field(default_factory=CountOptions)
    axes: str | None = field(default=None, metadata={"option": None})

    def __post_init__(self):
        for opt in options_of(type(self)):
            object.__setattr__(self, opt.name, opt.check(getattr(self, opt.name)))
        object.__setattr__(self, "axes", AXES_OPTION.check(self.axes))
        for name, cls in _SECTIONS.items():
            value = getattr(self, name)
            if isinstance(value, dict):
                object.__setattr__(self, name, cls.from_dict(value))
            elif not isinstance(value, cls):
                raise ValueError(f"{name} must be a {cls.__name__} or a dict, got {value!r}")
        if self.method == "manual" and self.threshold.value is None:
            raise ValueError("method 'manual' needs threshold.value")

    def replace(self, **changes):
        """A copy with ``changes`` (sections as dicts of their changed keys or objects)."""
        for name, value in changes.items():
            if name in _SECTIONS and isinstance(value, dict):
                changes[name] = getattr(self, name).replace(**value)
        return dataclasses.replace(self, **changes)

    def to_dict(self):
        """Plain dict (JSON types only), with a ``version`` key."""
        return {
            "version": SETTINGS_VERSION,
            "method": self.method,
            **{name: getattr(self, name).to_dict() for name in _SECTIONS},
            "axes": self.axes,
        }

    @classmethod
    def from_dict(cls, data):
        """Settings from :meth:`to_dict`'s dict (any version); missing keys take defaults.

        A ``params.json`` written by ``napari-binseg segment`` (settings, inputs, command) gives
        its settings.
        """
        if isinstance(data, dict) and "settings" in data and "inputs" in data:
            data = data["settings"]
        if not isinstance(data, dict):
            raise ValueError(f"settings must be a JSON object, got {type(data).__name__}")
        if not _depth(data, _MAX_DEPTH):
            raise ValueError(f"settings are nested deeper than {_MAX_DEPTH} levels")
        data = migrate_settings(data)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known, key=str)
        if unknown:
            raise ValueError(f"unknown setting {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def to_json(self, path=None):
        """The settings as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source):
        """Settings from a JSON file path or JSON text.

        Raises
        ------
        ValueError
            Unreadable JSON or invalid settings (the message names the file).
        """
        text = str(source)
        where = "settings"
        if not text.lstrip().startswith("{"):
            where = str(source)
            try:
                text = Path(source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or str(exc)
                raise ValueError(f"cannot read settings file {source}: {reason}") from None
        data = load_json(text, where)
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
