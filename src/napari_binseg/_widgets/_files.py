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


_ASCII_UNITS = {"µm": "um", "μm": "um", "micrometer": "um", "micron": "um", "nanometer": "nm"}


def columns_with_units(table, unit: str | None):
    """A copy of a measurement table whose column names carry their unit, for the widget's
    table and its CSV: ``area_um2``, ``volume_um3``, ``centroid_y_um``,
    ``equivalent_diameter_um`` with a calibrated ``unit`` (``"µm"``), ``_px``/``_px2``
    otherwise; bounding boxes are always in pixels; label, frame and intensity columns keep
    their names. ``attrs`` are kept (pandas and napari-skimage-regionprops read it as usual).
    """
    u = _ASCII_UNITS.get(unit, unit) if unit else "px"
    names = {}
    for column in table.columns:
        name = str(column)
        if name == "area":
            names[column] = f"area_{u}2"
        elif name == "volume":
            names[column] = f"volume_{u}3"
        elif name.startswith("centroid_") or name == "equivalent_diameter":
            names[column] = f"{name}_{u}"
        elif name.startswith("bbox_"):
            names[column] = f"{name}_px"
    out = table.rename(columns=names)
    out.attrs = dict(table.attrs)
    return out
