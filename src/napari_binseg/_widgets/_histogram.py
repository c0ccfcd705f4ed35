"""A small intensity histogram painted with QPainter, with threshold lines marked."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

#: Values drawn from at most this many pixels: the histogram is for the eye, not for the
#: threshold (the core computes that on all pixels).
MAX_SAMPLES = 2_000_000


def histogram(data, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the finite values of ``data`` (a strided sample when large).

    Parameters
    ----------
    data : ndarray
        Any numeric array (a plane or a whole stack).
    bins : int
        Number of bins; integer images with a smaller range get one bin per grey level.

    Returns
    -------
    counts : (B,) int64 ndarray
    edges : (B + 1,) float64 ndarray
    """
    data = np.asarray(data)
    if data.size > MAX_SAMPLES:
        step = int(np.ceil(data.size / MAX_SAMPLES))
        data = data.reshape(-1)[::step]
    data = data.reshape(-1)
    if data.dtype.kind == "f":
        data = data[np.isfinite(data)]
    if data.size == 0:
        return np.zeros(1, np.int64), np.array([0.0, 1.0])
    lo, hi = float(data.min()), float(data.max())
    if data.dtype.kind in "biu" and hi - lo + 1 <= bins:
        edges = np.arange(lo, hi + 2, dtype=np.float64) - 0.5
        counts = np.bincount((data.astype(np.int64) - int(lo)), minlength=int(hi - lo + 1))
        return counts.astype(np.int64), edges
    if hi == lo:
        hi = lo + 1.0
    counts, edges = np.histogram(data, bins=bins, range=(lo, hi))
    return counts.astype(np.int64), edges


class HistogramPlot(QWidget):
    """Bars of an intensity histogram and vertical lines at the threshold(s).

    ``set_histogram(counts, edges)`` sets the bars, ``set_thresholds(values)`` the lines, and
    ``log`` switches the counts axis to log(1 + count).
    """

    def __init__(self, parent=None):
        super().__init__(parent)
        self.counts = np.zeros(1, np.int64)
        self.edges = np.array([0.0, 1.0])
        self.thresholds: list[float] = []
        self.log = True
        self.setMinimumHeight(100)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)
        self.setToolTip(
            "Intensity histogram of the displayed plane (or of the image for the image scope); "
            "x: intensity in the image's grey values, red lines: the threshold(s)"
        )

    def set_histogram(self, counts, edges):
        self.counts = np.asarray(counts)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.update()

    def set_thresholds(self, values):
        values = np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()
        self.thresholds = [float(v) for v in values if np.isfinite(v)]
        self.update()

    def set_log(self, log: bool):
        self.log = bool(log)
        self.update()

    def heights(self) -> np.ndarray:
        """Bar heights in [0, 1] as drawn (log or linear)."""
        counts = self.counts.astype(np.float64)
        if self.log:
            counts = np.log1p(counts)
        top = counts.max() if counts.size else 0.0
        return counts / top if top > 0 else counts

    def x_of(self, value: float, width: float) -> float:
        lo, hi = self.edges[0], self.edges[-1]
        return (value - lo) / (hi - lo) * width if hi > lo else 0.0

    def ticks(self, max_ticks: int = 6) -> np.ndarray:
        """Intensity values of the axis ticks: round numbers (1, 2 or 5 x 10^k) in the range."""
        lo, hi = float(self.edges[0]), float(self.edges[-1])
        return nice_ticks(lo, hi, max_ticks)

    def paintEvent(self, event):
        painter = QPainter(self)
        try:
            metrics = painter.fontMetrics()
            text_h = metrics.height()
            # Bars between a line for the threshold text (top) and the intensity axis (bottom).
            rect = QRectF(self.rect()).adjusted(4, text_h + 2, -4, -(text_h + 6))
            painter.fillRect(self.rect(), QColor(38, 41, 48))
            heights = self.heights()
            n = len(heights)
            if n:
                bar_w = rect.width() / n
                painter.setPen(Qt.NoPen)
                painter.setBrush(QColor(170, 180, 200))
                for i, h in enumerate(heights):
                    if h <= 0:
                        continue
                    bh = h * rect.height()
                    painter.drawRect(
                        QRectF(rect.left() + i * bar_w, rect.bottom() - bh, max(bar_w, 1.0), bh)
                    )
            # Intensity axis: ticks at round grey values, labelled in the image's units.
            axis = QColor(200, 200, 200)
            painter.setPen(axis)
            painter.drawLine(
                QPointF(rect.left(), rect.bottom()), QPointF(rect.right(), rect.bottom())
            )
            for value in self.ticks(max(2, int(rect.width() // 60))):
                x = rect.left() + self.x_of(value, rect.width())
                painter.drawLine(QPointF(x, rect.bottom()), QPointF(x, rect.bottom() + 4))
                label = f"{value:.4g}"
                w = (
                    metrics.horizontalAdvance(label)
                    if hasattr(metrics, "horizontalAdvance")
                    else metrics.width(label)
                )
                left = min(max(x - w / 2, 0.0), self.width() - w)
                painter.drawText(QPointF(left, self.height() - 3), label)
            pen = QPen(QColor(230, 60, 60))
            pen.setWidth(2)
            painter.setPen(pen)
            for t in self.thresholds:
                x = rect.left() + self.x_of(t, rect.width())
                painter.drawLine(QPointF(x, rect.top()), QPointF(x, rect.bottom()))
            painter.setPen(QColor(220, 220, 220))
            text = "intensity"
            if self.thresholds:
                text = "threshold " + ", ".join(f"{t:.4g}" for t in self.thresholds)
            text += "   (log counts)" if self.log else "   (counts)"
            painter.drawText(QPointF(rect.left(), text_h - 2), text)
        finally:
            painter.end()


def nice_ticks(lo: float, hi: float, max_ticks: int = 6) -> np.ndarray:
    """Round tick values (steps of 1, 2 or 5 x 10^k) inside ``[lo, hi]``, at most ``max_ticks``.

    Examples
    --------
    >>> nice_ticks(-0.5, 186.5).tolist()
    [0.0, 50.0, 100.0, 150.0]
    """
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.array([lo]) if np.isfinite(lo) else np.array([])
    raw = (hi - lo) / max(int(max_ticks), 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = np.ceil(lo / step) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    return ticks[(ticks >= lo) & (ticks <= hi)] + 0.0
