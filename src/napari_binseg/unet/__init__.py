"""MONAI U-Net for nuclei: safe model loading, inference (predict/segment), training.

Importing this package does not import torch or monai; they load when a model is used.
"""

from .._lazy import attach

_API = {
    "predict": "inference",
    "predict_channels": "inference",
    "segment": "inference",
    "estimate_diameter": "inference",
    "probabilities_at_scale": "inference",
    "load_model": "network",
    "LoadedModel": "network",
    "train": "training",
    "TrainConfig": "training",
    "export_bundle": "training",
}

__getattr__, __dir__, __all__ = attach(__name__, _API)
