"""Command line: ``napari-binseg COMMAND ...``.

A thin dispatcher over the core functions, one module per command (:mod:`.segment`,
:mod:`.evaluate`, :mod:`.train`, :mod:`.demo`). Each module has ``add(subparsers)``, which adds
its parser and stores its handler as ``func``; a handler returns the exit code and raises
:class:`CliError` for bad input, which :func:`main` prints as one line
(``napari-binseg evaluate: error: ...``) with exit code 2. This package's warnings are one
line too (``napari-binseg segment: NAME: warning: ...``, :class:`._common.WarningLines`,
``args.warning_lines``). The option flags come from the stage
options (:mod:`._flags`). To add a command, write its module and append it to ``COMMANDS``.
"""

import argparse
import sys

from ._common import CliError, WarningLines
from .segment import _settings_from_args  # noqa: F401 - imported from here since 0.1

__all__ = ["COMMANDS", "CliError", "build_parser", "main"]


def _commands():
    from . import demo, evaluate, segment, train

    return [segment.add, evaluate.add, demo.add, train.add]


#: ``add(subparsers)`` functions of the commands, in ``--help`` order.
COMMANDS = _commands()


def build_parser():
    """The ``napari-binseg`` argument parser with every registered subcommand."""
    from .. import __version__

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
        with WarningLines(args.command) as args.warning_lines:
            return int(args.func(args) or 0)
    except CliError as exc:
        print(f"napari-binseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
