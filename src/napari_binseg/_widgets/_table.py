"""A read-only table view of a pandas DataFrame.

A QTableView over a small model: cells are formatted only when Qt paints them, so a table of
tens of thousands of objects shows at once (a QTableWidget would build one item per cell).
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt
from qtpy.QtWidgets import QAbstractItemView, QTableView


class DataFrameModel(QAbstractTableModel):
    def __init__(self, df=None, parent=None):
        super().__init__(parent)
        self._columns: list[str] = []
        self._values: list[np.ndarray] = []
        self._n = 0
        if df is not None:
            self.set_dataframe(df)

    def set_dataframe(self, df):
        self.beginResetModel()
        self._columns = [str(c) for c in df.columns]
        self._values = [df[c].to_numpy() for c in df.columns]
        self._n = len(df)
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()):  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else self._n

    def columnCount(self, parent=QModelIndex()):  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index, role=Qt.DisplayRole):
        if role == Qt.DisplayRole and index.isValid():
            return _fmt(self._values[index.column()][index.row()])
        if role == Qt.TextAlignmentRole:
            return int(Qt.AlignRight | Qt.AlignVCenter)
        return None

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if role != Qt.DisplayRole:
            return None
        if orientation == Qt.Horizontal:
            return self._columns[section] if section < len(self._columns) else None
        return str(section + 1)


class DataFrameTable(QTableView):
    """Shows a DataFrame; ``set_dataframe(df)`` replaces the content."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._model = DataFrameModel(parent=self)
        self.setModel(self._model)
        self.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.setMinimumHeight(100)
        self.horizontalHeader().setResizeContentsPrecision(50)  # size columns on 50 rows
        self.verticalHeader().setDefaultSectionSize(22)

    def set_dataframe(self, df):
        self._model.set_dataframe(df)
        self.resizeColumnsToContents()

    def rowCount(self) -> int:
        return self._model.rowCount()

    def columnCount(self) -> int:
        return self._model.columnCount()

    def header_labels(self) -> list[str]:
        return list(self._model._columns)

    def cell_text(self, row, column) -> str:
        return self._model.data(self._model.index(row, column)) or ""


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if not np.isfinite(v) else f"{v:.4g}"
    return str(v)
