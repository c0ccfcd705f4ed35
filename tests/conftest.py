"""Shared fixtures: the packaged real sample images and the optional shared data folder."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

DATA = Path(__file__).parents[1] / "src" / "napari_binseg" / "data"
SHARED_DATA = Path(__file__).parents[2] / "shared" / "data" / "dsb2018-train"
SAMPLE_NAMES = ("nuclei_175dbb364bfefc95", "nuclei_003cee89357d9fe1")


@pytest.fixture(scope="session")
def sample_image() -> np.ndarray:
    """The 520x696 uint8 DSB 2018 sample (179 nuclei)."""
    return tifffile.imread(DATA / f"{SAMPLE_NAMES[0]}.tif")


@pytest.fixture(scope="session")
def sample_labels() -> np.ndarray:
    """Ground-truth instance labels of ``sample_image``."""
    return tifffile.imread(DATA / f"{SAMPLE_NAMES[0]}_labels.tif")


@pytest.fixture(scope="session")
def sample_images() -> dict:
    """Both packaged samples, by name."""
    return {name: tifffile.imread(DATA / f"{name}.tif") for name in SAMPLE_NAMES}


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """``../shared/data/dsb2018-train`` when present (a developer's clone), else skip."""
    if not (SHARED_DATA / "index.csv").is_file():
        pytest.skip("../shared/data/dsb2018-train is not present")
    return SHARED_DATA
