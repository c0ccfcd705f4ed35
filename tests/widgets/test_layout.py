"""The widgets fit a laptop screen: minimum heights, all five docked as tabs, short names, and
the demo opening on the first step of the workflow without an unasked-for layer."""

import numpy as np
import pytest
from qtpy.QtWidgets import QTabBar

from napari_binseg import synthetic_nuclei
from napari_binseg._widgets._base import MAX_MIN_HEIGHT

NAMES = ("Threshold", "U-Net", "Count", "Evaluate", "Train")


@pytest.fixture
def viewer_with_layers(make_napari_viewer):
    viewer = make_napari_viewer()
    image, labels = synthetic_nuclei((128, 128), radius=6, seed=0)
    viewer.add_image(image, name="cells")
    viewer.add_labels(labels, name="ground truth")
    return viewer


@pytest.mark.parametrize("name", NAMES)
def test_minimum_height(viewer_with_layers, name):
    """Usable at <= 450 px: the form with its advanced options folded fits without scrolling,
    and the dock itself can be shorter still (everything sits in a scroll area)."""
    _, widget = viewer_with_layers.window.add_plugin_dock_widget("napari-binseg", name)
    assert widget.minimumSizeHint().height() <= MAX_MIN_HEIGHT
    assert widget.content.minimumSizeHint().height() <= MAX_MIN_HEIGHT
    assert widget.content.minimumSizeHint().width() <= 340  # napari's dock width
    assert not widget.advanced_section.isExpanded()


def test_five_docked_as_tabs_fit_full_hd(viewer_with_layers):
    viewer = viewer_with_layers
    docked = [
        viewer.window.add_plugin_dock_widget("napari-binseg", name, tabify=True)[1]
        for name in NAMES
    ]
    window = docked[0].window()
    hint = window.minimumSizeHint()
    assert hint.height() <= 1080 - 60 and hint.width() <= 1920  # with the OS's title bar
    titles = [bar.tabText(i) for bar in window.findChildren(QTabBar) for i in range(bar.count())]
    assert set(NAMES) <= set(titles)  # short titles: "Threshold (napari-binseg)" is cut


def test_demo_opens_on_the_first_step_without_a_preview(make_napari_viewer, monkeypatch):
    import napari

    from napari_binseg import demo

    made = []

    def viewer_factory(*args, show=False, **kwargs):
        made.append(make_napari_viewer(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(napari, "Viewer", viewer_factory)
    viewer, widgets = demo.open_viewer(show=False)
    assert [layer.name for layer in viewer.layers] == ["nuclei_2d", "nuclei_2d ground truth"]
    assert set(widgets) == set(demo.WIDGETS) and demo.WIDGETS[0] == "Threshold"
    bars = [b for b in widgets["Threshold"].window().findChildren(QTabBar) if b.count() >= 4]
    assert bars and bars[0].tabText(bars[0].currentIndex()).startswith("Threshold")
    # Role defaults in the demo: the image, not the ground truth, is the input; Evaluate
    # has no prediction yet rather than the ground truth twice.
    assert widgets["Threshold"].image.value is viewer.layers["nuclei_2d"]
    evaluate = widgets["Evaluate"]
    assert evaluate.ground_truth.value is viewer.layers["nuclei_2d ground truth"]
    assert evaluate.prediction.value is None
    np.testing.assert_array_equal(widgets["Count"].table_view.rowCount(), 0)


@pytest.mark.parametrize("name", NAMES)
def test_labels_are_not_cut_on_a_laptop_screen(make_napari_viewer, qtbot, name):
    """In napari's window at 1366x768 every row label is as wide as its text in the
    stylesheet's font (magicgui measures it in the application's font, and a narrow dock cut
    "diameter (µm)" to "diameter (µ"), also after the units change with the layer."""
    from qtpy.QtWidgets import QLabel

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1366, 768)
    stack = np.zeros((4, 32, 32), np.uint16)
    viewer.add_image(stack, name="stack", scale=(2.0, 0.325, 0.325), units="µm")
    _, widget = viewer.window.add_plugin_dock_widget("napari-binseg", name)
    widget.advanced_section.expand(animate=False)
    qtbot.wait(50)
    viewer.add_image(stack[0], name="plane", scale=(0.325, 0.325), units="µm")  # new choices
    qtbot.wait(50)
    rows = [
        label
        for label in widget.content.findChildren(QLabel)
        if label.minimumWidth() > 0 and label.isVisibleTo(widget.content) and label.text()
    ]
    assert len(rows) >= 3
    cut = {
        label.text(): (label.width(), label.sizeHint().width())
        for label in rows
        if label.width() < label.sizeHint().width()
    }
    assert cut == {}
    assert widget.window().width() <= 1366
