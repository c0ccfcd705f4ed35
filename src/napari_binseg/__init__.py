"""Segment, count and measure nuclei: thresholding, a MONAI U-Net, a cell counter, evaluation.

The public API lives here and never imports Qt, napari, torch or monai: submodules load on first
attribute access, and the U-Net modules import torch only when a model is used.
"""

from ._lazy import attach

__version__ = "0.1.0"

_API = {
    "threshold": "thresholding",
    "threshold_value": "thresholding",
    "apply_threshold": "thresholding",
    "SCOPES": "thresholding",
    "THRESHOLD_METHODS": "thresholding",
    "imread": "io",
    "imwrite": "io",
    "read_zarr": "io",
    "write_zarr": "io",
    "evaluate": "evaluation",
    "pixel_scores": "evaluation",
    "match_objects": "evaluation",
    "error_map": "evaluation",
    "synthetic_nuclei": "synthetic",
    "synthetic_stack": "synthetic",
    "count_cells": "counting",
    "count_summary": "counting",
    "measure_objects": "measure",
    "split_touching": "_split",
    "estimate_diameter": "size",
    "subtract_background": "background",
    "remove_background": "background",
    "PipelineSettings": "settings",
    "ThresholdSettings": "pipeline",
    "UNetSettings": "pipeline",
    "CountSettings": "pipeline",
    "PIPELINE_METHODS": "pipeline",
    "run_pipeline": "pipeline",
    "segment_file": "batch",
    "segment_files": "batch",
    "ThresholdOptions": "options",
    "UNetOptions": "options",
    "CountOptions": "options",
    "EvaluateOptions": "options",
    "TrainOptions": "options",
    "BatchOptions": "options",
    "predict": "unet.inference",
    "segment": "unet.inference",
    "load_model": "unet.network",
    "train": "unet.training",
    "TrainConfig": "unet.training",
    "export_bundle": "unet.training",
    "TrainingDiverged": "unet.training",
}

__getattr__, __dir__, __all__ = attach(__name__, _API)
