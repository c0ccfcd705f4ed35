"""Widget forms built from the option objects of :mod:`napari_binseg.options`.

Each option is declared once, in its stage class (default, range, choices, units, help, "0 =
auto", advanced or not); :class:`OptionForm` turns those declarations into magicgui controls
(label with units, tooltip from the help, range, choices) and reads the controls back into
the stage class, whose checks give the same messages as the core and the command line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

from napari_binseg.options import Option, options_of

#: Largest value a number control allows when its option has no upper bound.
_BIG = 1e12


def _display(value, opt: Option, names: Mapping | None) -> str:
    if names and value in names:
        return str(names[value])
    if value is None:
        return opt.none_label or "none"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def is_size(opt: Option) -> bool:
    """An area (2D) or volume (3D) that follows the calibration: its units are squared or
    cubed (a plain pixel count stays ``px``)."""
    return opt.name.endswith("_size") and "|" in (opt.units or "")


def unit_text(opt: Option, *, calibrated: str | None = None, ndim: int = 2) -> str:
    """Units of ``opt`` as the form shows them: ``px``, ``µm``, ``px²``, ``µm³``...

    ``"px|µm"`` options follow the calibration: ``calibrated`` is the layer's length unit
    as shown (``"µm"``), or None for pixels.
    """
    if not opt.units:
        return ""
    unit = opt.units
    if "|" in unit:
        pixel, _physical = unit.split("|", 1)
        unit = calibrated or pixel
    if is_size(opt) and not unit.endswith(("²", "³")):
        unit += "³" if ndim == 3 else "²"
    return unit


def tooltip_text(opt: Option, units: str = "") -> str:
    """The option's help, with its range, units and what 0 or "auto" means."""
    parts = [opt.help]
    if opt.kind in (int, float) and not opt.choices:
        lo = "" if opt.low is None else f"{'>' if opt.low_open else '>='} {opt.low:g}"
        hi = "" if opt.high is None else f"{'<' if opt.high_open else '<='} {opt.high:g}"
        span = ", ".join(p for p in (lo, hi) if p)
        if span:
            parts.append(f"Range: {span}{' ' + units if units else ''}.")
        elif units:
            parts.append(f"In {units}.")
    if opt.nullable and opt.zero_is_none and "0 =" not in opt.help:
        word = opt.none_label or "none"
        first = f"; one step up from {word}: {opt.first:g}" if opt.first is not None else ""
        parts.append(f"0 = {word}{first}.")
    elif opt.nullable and not opt.zero_is_none and opt.kind in (int, float) and not opt.special:
        parts.append(f"Lowest value: {opt.none_label or 'none'}.")
    return " ".join(parts)


class OptionForm:
    """magicgui controls for the options of a stage class, and the way back.

    Parameters
    ----------
    cls : type
        A stage class of :mod:`napari_binseg.options` (``ThresholdOptions``...).
    skip : iterable of str
        Options the widget shows its own way (or not at all); :meth:`read` takes them from
        ``extra``.
    choice_names : mapping, optional
        ``{option name: {value: display text}}`` for choices that read better in words.
    labels : mapping, optional
        ``{option name: label}`` replacing the option's short label.

    Attributes
    ----------
    widgets : dict
        Option name -> magicgui control, in declaration order.
    """

    def __init__(
        self,
        cls,
        *,
        skip: Iterable[str] = (),
        choice_names: Mapping | None = None,
        labels: Mapping | None = None,
    ):
        self.cls = cls
        self.skip = set(skip)
        self.options = {o.name: o for o in options_of(cls) if o.name not in self.skip}
        self._choice_names = dict(choice_names or {})
        self._labels = dict(labels or {})
        self._calibrated: str | None = None
        self._ndim = 2
        self.widgets = {name: self._make(opt) for name, opt in self.options.items()}
        self._label_all()

    # -- building ----------------------------------------------------------------------------
    def _make(self, opt: Option):
        names = self._choice_names.get(opt.name)
        if opt.multiple:
            boxes = [
                CheckBox(text=str(c), value=c in (opt.default or ())) for c in opt.choices or ()
            ]
            # One per line: a row of them would make the dock wide.
            box = Container(layout="vertical", labels=False, widgets=boxes)
            box.margins = (0, 0, 0, 0)
            return box
        if opt.kind is bool and not opt.choices:
            return CheckBox(value=bool(opt.default))
        if opt.kind in (int, float) and opt.special:
            return WordOrNumber(opt)
        if opt.choices and (opt.kind not in (int, float) or not opt.special):
            values = list(opt.choices)
            if opt.nullable and None not in values:
                values = [None, *values]
            choices = [(_display(v, opt, names), v) for v in values]
            return ComboBox(choices=choices, value=opt.default)
        if opt.kind in (int, float):
            return self._number(opt)
        raise TypeError(f"{self.cls.__name__}.{opt.name}: no form control for {opt.kind}")

    def _number(self, opt: Option):
        widget = _number_control(opt)
        self._set_number(widget, opt, opt.default)
        return widget

    def _label_all(self):
        for name, widget in self.widgets.items():
            opt = self.options[name]
            units = unit_text(opt, calibrated=self._calibrated, ndim=self._ndim)
            label = self._labels.get(name, opt.label)
            if units:
                label = f"{label} ({units})"
            if isinstance(widget, CheckBox):
                widget.text = label
                widget.label = ""
            else:
                widget.label = label
            widget.tooltip = tooltip_text(opt, units)

    def set_calibration(self, unit: str | None, ndim: int = 2):
        """Units of the ``px|µm`` options: ``unit`` (e.g. ``"µm"``) or None for pixels;
        ``ndim`` 3 shows sizes as volumes."""
        self._calibrated = unit
        self._ndim = ndim
        self._label_all()

    def set_first(self, name: str, value: float) -> None:
        """Make ``value`` the first number of option ``name``'s "0 = word" box, one step up
        from the word, and say so in its tooltip (a U-Net model's own probability threshold
        instead of the bundled model's)."""
        self.options[name] = replace(self.options[name], first=value)
        self.widgets[name].native.first_value = value
        self._label_all()

    def add_to(self, host, order: Iterable[str] | None = None, advanced: Iterable[str] = ()):
        """Put the controls in ``host`` (a :class:`~._base.BinsegWidget`): the options marked
        advanced, and those named in ``advanced``, in its folded section."""
        advanced = set(advanced)
        for name in order or self.widgets:
            folded = self.options[name].advanced or name in advanced
            host.add_option(name, self.widgets[name], advanced=folded)

    # -- values ------------------------------------------------------------------------------
    def values(self) -> dict:
        """The options as the stage class takes them (None where the form shows "auto")."""
        return {name: self._get(name) for name in self.widgets}

    def read(self, **extra):
        """The stage options of the form (``extra`` for the skipped ones); ValueError as the
        stage class raises it."""
        return self.cls(**(self.values() | extra))

    def set(self, options) -> None:
        """Set the controls from a stage instance (or a dict); ValueError for a value a
        control cannot show, naming the option."""
        get = options.get if isinstance(options, Mapping) else lambda k: getattr(options, k)
        for name, widget in self.widgets.items():
            opt = self.options[name]
            value = get(name)
            if opt.multiple:
                for box in widget:
                    box.value = box.text in {str(v) for v in value or ()}
            elif isinstance(widget, (SpinBox, FloatSpinBox)):
                self._set_number(widget, opt, value)
            else:
                if isinstance(widget, ComboBox) and value not in [v for v in widget.choices]:
                    raise ValueError(f"{opt.name}: the form has no choice {value!r}")
                widget.value = value

    def _get(self, name):
        opt, widget = self.options[name], self.widgets[name]
        if opt.multiple:
            return tuple(box.text for box in widget if box.value)
        value = widget.value
        if isinstance(widget, (SpinBox, FloatSpinBox)):
            if opt.nullable and value <= widget.min and not opt.zero_is_none:
                return None
            if opt.zero_is_none and value == 0:
                return None
            return int(value) if opt.kind is int else float(value)
        return value

    def _set_number(self, widget, opt, value):
        if value is None:
            widget.value = 0 if opt.zero_is_none else widget.min
            return
        if isinstance(value, str) or not (widget.min <= value <= widget.max):
            raise ValueError(
                f"{opt.name}: {value!r} is outside what the form shows "
                f"({widget.min:g} .. {widget.max:g})"
            )
        widget.value = value


class WordOrNumber(Container):
    """The control of a number option that also takes words (``"auto"``) and None: a choice
    of those or "value", and the number's box, shown when "value" is chosen. ``value`` is the
    option's value."""

    _NUMBER = "<value>"

    def __init__(self, opt: Option):
        self._opt = opt
        choices = [(opt.none_label or "none", None)] if opt.nullable else []
        choices += [(word, word) for word in opt.special] + [("value", self._NUMBER)]
        self._mode = ComboBox(choices=choices)
        self._box = _number_control(opt, numbers_only=True)
        if opt.first is not None:
            self._box.value = opt.first
        super().__init__(layout="horizontal", labels=False, widgets=[self._mode, self._box])
        self.margins = (0, 0, 0, 0)
        self._mode.changed.connect(self._show_box)
        self.value = opt.default

    def _show_box(self, *_):
        self._box.visible = self._mode.value == self._NUMBER

    @property
    def value(self):
        if self._mode.value != self._NUMBER:
            return self._mode.value
        return self._opt.kind(self._box.value)

    @value.setter
    def value(self, value):
        if value is None or isinstance(value, str):
            if value not in [c for c in self._mode.choices if c != self._NUMBER]:
                raise ValueError(f"{self._opt.name}: the form has no choice {value!r}")
            self._mode.value = value
        else:
            if not self._box.min <= value <= self._box.max:
                raise ValueError(
                    f"{self._opt.name}: {value!r} is outside what the form shows "
                    f"({self._box.min:g} .. {self._box.max:g})"
                )
            self._box.value = value
            self._mode.value = self._NUMBER
        self._show_box()


def number_control(cls, name: str, value: float, *, label: str | None = None):
    """A number control for the numbers of option ``name`` of the stage class ``cls`` (its
    range, step, units and help), for a widget that shows the option's other values (``auto``,
    none, several numbers) its own way; ``value`` is what it shows first."""
    opt = next(o for o in options_of(cls) if o.name == name)
    widget = _number_control(opt, numbers_only=True)
    widget.value = value
    units = unit_text(opt)
    widget.label = f"{label or opt.label}{f' ({units})' if units else ''}"
    widget.tooltip = tooltip_text(opt, units)
    return widget


def _number_control(opt: Option, *, numbers_only: bool = False):
    """A spin box over the range of ``opt``; with the option's none value (one step below the
    range, or 0) unless ``numbers_only``."""
    nullable = opt.nullable and not numbers_only
    zero_is_none = opt.zero_is_none and not numbers_only
    is_int = opt.kind is int
    step = 1 if is_int else _step(opt)
    decimals = 0 if is_int else _decimals(step)
    tiny = 1 if is_int else 10.0**-decimals  # the smallest change the control shows
    low = 0.0 if opt.low is None and zero_is_none else opt.low
    low = -_BIG if low is None else low
    if opt.low_open and not (zero_is_none and low == 0):
        low = low + tiny
    high = _BIG if opt.high is None else opt.high
    if opt.high_open:
        high = high - tiny
    if nullable and not zero_is_none:
        low = low - step  # one step below the range: the "auto"/"none" value
    lowest = low if low > 0 else tiny  # the lowest number; 0 is the word
    if zero_is_none:
        low = min(low, 0)
    if is_int and not nullable:
        widget = SpinBox(step=1, min=int(low), max=int(min(high, 2**31 - 1)))
    else:  # an int with a word too: magicgui's int box (superqt's) cannot show the word
        widget = FloatSpinBox(step=step, min=low, max=high)
        widget.native.setDecimals(decimals)
    if nullable:
        widget.native.setSpecialValueText(opt.none_label or "none")
    if nullable and zero_is_none:
        first = lowest if opt.first is None else opt.first
        _step_from_word(widget.native, first=first, lowest=lowest, step=step, decimals=decimals)
    return widget


def _step_from_word(native, *, first: float, lowest: float, step: float, decimals: int):
    """Arrows, wheel and keys of a "0 = word" spin box: one step up from the word (0) gives
    ``first`` (kept as ``native.first_value``, which :meth:`OptionForm.set_first` changes); a
    step below ``lowest`` gives the word; in between, the box steps as usual (from 0.5 down to
    0.49, so a nudge near the first value needs no typing). Qt's own step from 0 would be the
    smallest number (0.01 for a probability): a value nobody meant that runs silently."""
    from qtpy.QtWidgets import QStyle

    native.first_value = first

    def step_by(steps: int):
        native.interpretText()  # text typed but not yet taken, as Qt's own stepBy does
        value = native.value()
        for _ in range(abs(steps)):
            if steps > 0:
                value = native.first_value if value == 0 else round(value + step, decimals)
            elif value - step < lowest - step / 1000:
                value = 0
            else:
                value = round(value - step, decimals)
        native.setValue(min(value, native.maximum()))
        if native.style().styleHint(QStyle.StyleHint.SH_SpinBox_SelectOnStep, None, native):
            native.selectAll()

    # magicgui makes the Qt spin box itself; PyQt and PySide call an instance's Python
    # override of a virtual method (stepBy serves the arrows, the wheel and the keys).
    native.stepBy = step_by


def _step(opt: Option) -> float:
    """A spin box step for a float option: about a twentieth of its range, or of its default
    when that is smaller (a learning rate); when unbounded 0.5, or about a twentieth of its
    first value when that is larger (an area)."""
    step = 0.5
    if opt.low is not None and opt.high is not None and opt.high > opt.low:
        step = float(10 ** math.floor(math.log10((opt.high - opt.low) / 20)))
    elif opt.first:
        step = max(step, float(10 ** math.floor(math.log10(opt.first / 20))))
    default = opt.default if isinstance(opt.default, (int, float)) else 0
    if 0 < abs(default) < step:
        step = float(10 ** math.floor(math.log10(abs(default))))
    return step


def _decimals(step: float) -> int:
    """Decimals that show a tenth of ``step``."""
    return max(2, -math.floor(math.log10(step)) + 2) if step < 1 else 2
