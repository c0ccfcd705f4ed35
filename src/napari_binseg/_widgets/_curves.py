"""Training curves painted with QPainter: losses on the left axis, validation F1 on the right."""

from __future__ import annotations

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

#: (history key, legend, colour, axis): losses share the left axis, F1 uses 0-1 on the right.
SERIES = (
    ("train_loss", "train loss", "#4c9be8", "loss"),
    ("val_loss", "val loss", "#f0a030", "loss"),
    ("val_f1", "val F1", "#5cc85c", "f1"),
)


class TrainingCurves(QWidget):
    """Train loss, validation loss and validation F1 per epoch; ``set_history(records)``."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.records: list[dict] = []
        self.setMinimumHeight(100)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_history(self, records):
        self.records = list(records)
        self.update()

    def points(self, key, rect: QRectF) -> list[QPointF]:
        """Screen positions of one series in ``rect`` (x: epoch, y: value on its axis)."""
        n = len(self.records)
        axis = next(a for k, _, _, a in SERIES if k == key)
        top = 1.0
        if axis == "loss":
            values = (r[k] for r in self.records for k, *_ in SERIES[:2])
            top = max((v for v in values if v is not None), default=1.0) or 1.0
        out = []
        for i, r in enumerate(self.records):
            if r[key] is None:  # epoch 0 of a fine-tune has no train loss
                continue
            x = rect.left() + (rect.width() * (i / (n - 1)) if n > 1 else rect.width() / 2)
            y = rect.bottom() - rect.height() * min(max(r[key] / top, 0.0), 1.0)
            out.append(QPointF(x, y))
        return out

    def paintEvent(self, event):
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = QRectF(self.rect()).adjusted(8, 18, -8, -6)
        painter.setPen(QPen(QColor("#888888"), 1))
        painter.drawRect(rect)
        x = rect.left() + 4
        for key, name, colour, _ in SERIES:
            painter.setPen(QPen(QColor(colour), 2))
            painter.drawText(QPointF(x, 13), name)
            x += painter.fontMetrics().horizontalAdvance(name) + 12
            pts = self.points(key, rect)
            for a, b in zip(pts, pts[1:], strict=False):
                painter.drawLine(a, b)
            for p in pts:
                painter.drawEllipse(p, 2.0, 2.0)
        if not self.records:
            painter.setPen(QPen(QColor("#888888"), 1))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, "curves appear after each epoch")
        painter.end()
