"""Saving a widget's table: the CSV writer (tested without a dialog) and the Save-as dialog."""

from __future__ import annotations


def save_table_csv(table, path) -> str:
    """Write a pandas table as CSV (no index); returns the path. Tested without a dialog."""
    path = str(path)
    if not path.lower().endswith(".csv"):
        path += ".csv"
    table.to_csv(path, index=False)
    return path


def ask_save_path(parent, default_name: str) -> str | None:
    """A Save-as dialog for a CSV file; None when the user cancels."""
    from qtpy.QtWidgets import QFileDialog

    path, _ = QFileDialog.getSaveFileName(
        parent, "Save table as CSV", default_name, "CSV files (*.csv)"
    )
    return path or None
