"""A read-only QTableWidget showing a pandas DataFrame."""

from __future__ import annotations

import numpy as np
from qtpy.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem

#: Rows shown at most; the full table is what "Save table as CSV" writes.
MAX_ROWS = 2000


class DataFrameTable(QTableWidget):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setMinimumHeight(160)

    def set_dataframe(self, df):
        shown = df.iloc[:MAX_ROWS]
        self.clear()
        self.setRowCount(len(shown))
        self.setColumnCount(len(shown.columns))
        self.setHorizontalHeaderLabels([str(c) for c in shown.columns])
        for j, column in enumerate(shown.columns):
            values = shown[column].to_numpy()
            for i, v in enumerate(values):
                self.setItem(i, j, QTableWidgetItem(_fmt(v)))
        self.resizeColumnsToContents()

    def cell_text(self, row, column) -> str:
        item = self.item(row, column)
        return item.text() if item is not None else ""


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{v:.4g}"
    return str(v)
