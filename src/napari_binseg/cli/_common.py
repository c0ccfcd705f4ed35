"""What every command shares: the one-line error, and this package's warnings as one line."""

import contextlib
import sys
import warnings

from .._own import own_warning


class CliError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


class WarningLines:
    """A context in which this package's warnings (:func:`napari_binseg._own.own_warning`)
    are printed as one line on stderr, ``napari-binseg COMMAND: [NAME: ]warning: MESSAGE``,
    not as Python's ``file:line: Category: message`` and source line; other libraries'
    warnings keep Python's format.

    A command that processes many inputs calls :meth:`input` before each: its warnings then
    name it, and Python's "once per place" holds per input (a second file that warns the
    same is told too).
    """

    def __init__(self, command):
        self.prefix = f"napari-binseg {command}"
        self.name = None
        #: Whether a progress bar holds the line (a warning ends it first).
        self.open_line = False
        self._contexts = None

    def __enter__(self):
        self._contexts = contextlib.ExitStack()
        self._contexts.enter_context(warnings.catch_warnings())
        python = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None):
            if not own_warning(category):
                return python(message, category, filename, lineno, file, line)
            where = f"{self.name}: " if self.name else ""
            start = "\n" if self.open_line else ""
            self.open_line = False
            print(f"{start}{self.prefix}: {where}warning: {message}", file=sys.stderr, flush=True)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc):
        return self._contexts.__exit__(*exc)

    def input(self, name):
        """Warnings from now on are about the input ``name``."""
        self.name = name
        # Entering a catch_warnings clears Python's "once per place" records. It is left only
        # at the end: leaving one here would drop the filters that modules imported since
        # (torch, monai) have added.
        self._contexts.enter_context(warnings.catch_warnings())
