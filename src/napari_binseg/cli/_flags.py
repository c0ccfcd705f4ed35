"""Command-line flags derived from the stage options (:mod:`napari_binseg.options`).

:func:`add_options` adds one flag per :class:`~napari_binseg.options.Option`: its type,
choices, help text, "none"/"auto" words and "0 = auto" mapping come from the option, so a new
option of a stage is a new flag without code here. A flag left out is absent from the parsed
namespace (``argparse.SUPPRESS``), so the value of a settings file or the default stays.
"""

import argparse

from ..options import options_of

_UNIT_WORDS = {"px": "pixels", "px|µm": "a size", "MB": "megabytes"}


def flag_name(opt, prefix=""):
    """``--name-with-dashes`` of an option (``--no-name`` for a bool that defaults to true)."""
    name = f"{prefix}{opt.name}".replace("_", "-")
    if opt.kind is bool and not opt.special and opt.default is True:
        return f"--no-{name}"
    return f"--{name}"


def dest(section, name):
    """Namespace attribute of an option's flag."""
    return f"opt__{section}__{name}"


def _words(opt):
    """What a number option's flag accepts besides numbers, in order, for messages."""
    words = list(opt.special)
    label = opt.none_label or "none"
    word = label if label.isalpha() else "none"  # "auto", "none"; "no limit" reads as none
    if opt.nullable and word not in words:
        words.append(word)
    return words


def number_type(opt):
    """An argparse ``type`` for a number option: numbers, its words, and 0 as None."""
    words = _words(opt)
    noun = _UNIT_WORDS.get(opt.units, "a number")
    if opt.kind is int:
        noun = "an integer" + (f" ({noun})" if opt.units in _UNIT_WORDS else "")

    def convert(text):
        low = text.strip().lower()
        if low in opt.special:
            return low
        if opt.nullable and low in ("none", "null", str(opt.none_label).lower()):
            return None
        expected = " or ".join([", ".join(words), noun] if words else [noun])
        try:
            value = float(low)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if opt.kind is int:
            if not value.is_integer():
                raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
            value = int(value)
        if opt.zero_is_none and value == 0:
            return None
        return value

    convert.__name__ = opt.kind.__name__  # argparse names the type in its messages
    return convert


def _bool_or_choice(opt):
    def convert(text):
        low = text.strip().lower()
        if low in ("true", "yes", "on", "1"):
            return True
        if low in ("false", "no", "off", "0"):
            return False
        if low in opt.special:
            return low
        raise argparse.ArgumentTypeError(
            f"expected true, false or {', '.join(opt.special)}, got {text!r}"
        )

    return convert


def help_text(opt):
    """The option's help sentence with its range, units, default and "0 = auto" mapping."""
    parts = [opt.help.rstrip(".")]
    extra = []
    if opt.kind in (int, float) and (opt.low is not None or opt.high is not None):
        extra.append(opt.describe())
    elif opt.units:
        extra.append(opt.units.replace("|", " or "))
    if opt.zero_is_none:
        extra.append(f"0 = {opt.none_label}")
    elif opt.nullable and opt.kind is not str and opt.none_label != "none":
        extra.append(f"none = {opt.none_label}")
    if opt.kind is not bool:
        default = opt.none_label if opt.default is None else opt.default
        if isinstance(default, tuple):
            default = " ".join(map(str, default))
        extra.append(f"default {default}")
    if opt.kind is bool and not opt.special and opt.default is True:
        extra.append("on by default; this flag turns it off")
    text = parts[0] + (f" ({'; '.join(extra)})" if extra else "")
    text = text.replace("px or µm", "in the file's units: physical on a calibrated file, else px")
    return text.replace("%", "%%")


def add_options(parser, cls, *, prefix="", skip=(), prefixed=()):
    """Add a flag for every option of the stage class ``cls`` to ``parser`` (or a group).

    Parameters
    ----------
    prefix : str
        Added to every flag name (``--threshold-...``).
    skip : iterable of str
        Options without a flag (a command adds its own).
    prefixed : iterable of str
        Options whose flag gets ``<section>-`` in front (names two stages share).

    Returns
    -------
    dict
        ``option name -> Option`` of the flags added.
    """
    added = {}
    for opt in options_of(cls):
        if opt.name in skip:
            continue
        pre = prefix + (f"{cls.section}_" if opt.name in prefixed else "")
        name = flag_name(opt, pre)
        kw = dict(dest=dest(cls.section, opt.name), default=argparse.SUPPRESS, help=help_text(opt))
        if opt.kind is bool and not opt.special:
            parser.add_argument(name, action="store_const", const=not opt.default, **kw)
        elif opt.kind is bool:
            choices = "|".join(["true", "false", *opt.special])
            parser.add_argument(name, type=_bool_or_choice(opt), metavar=choices, **kw)
        elif opt.kind is str and opt.choices is not None and not opt.multiple:
            if opt.nullable:
                parser.add_argument(name, metavar="|".join([*opt.choices, "none"]), **kw)
            else:
                parser.add_argument(name, choices=opt.choices, **kw)
        elif opt.kind is str:
            parser.add_argument(name, metavar=opt.name.upper(), **kw)
        elif opt.multiple:
            parser.add_argument(name, nargs="+", type=number_type(opt), metavar="X", **kw)
        else:
            words = _words(opt)
            metavar = "|".join(
                [*words, "PIXELS" if opt.units == "px" else opt.kind.__name__.upper()]
            )
            parser.add_argument(name, type=number_type(opt), metavar=metavar, **kw)
        added[opt.name] = opt
    return added


def given(args, cls):
    """``{option name: value}`` of the flags of ``cls`` given on the command line."""
    out = {}
    for opt in options_of(cls):
        key = dest(cls.section, opt.name)
        if hasattr(args, key):
            value = getattr(args, key)
            if opt.kind is str and opt.nullable and isinstance(value, str):
                value = None if value.lower() in ("none", "null") else value
            out[opt.name] = value
    return out
