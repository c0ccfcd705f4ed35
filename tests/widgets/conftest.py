"""Fixtures of the widget tests."""

import pytest


@pytest.fixture
def errors(monkeypatch) -> list:
    """Messages the widgets sent to napari's error notification."""
    from napari_binseg._widgets import _base

    shown = []
    monkeypatch.setattr(_base, "show_error", lambda message: shown.append(message))
    return shown
