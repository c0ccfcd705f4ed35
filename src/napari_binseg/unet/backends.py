"""Network runners: PyTorch (eager, optional bfloat16 autocast) or OpenVINO on the CPU.

A :class:`_Runner` turns a batch of normalized tiles ``(B, 1, *S)`` into channel probabilities
(the model's activation applied), and counts the tiles it has run for progress reports. The
OpenVINO network is compiled once per loaded model and precision and cached on the model,
with the activation in its graph: a numpy batch in, probabilities out, no PyTorch operation
in between (PyTorch's thread pool costs milliseconds per small operation on a busy CPU: a
sigmoid on a 256x256 output took 1.3 ms on 2 threads of the shared development machine
against 0.12 ms on one, padding a 64x64 probe 5.6 ms against 0.003).
"""

import numpy as np

#: ``precision="auto"``: bfloat16 autocast where the CPU has bf16 units, else float32.
PRECISIONS = ("auto", "float32", "bfloat16")

#: ``backend="auto"``: OpenVINO on the CPU when installed and the network converts, else PyTorch.
BACKENDS = ("auto", "torch", "openvino")


def _use_bf16(precision, device):
    import torch

    if precision == "float32":
        return False
    if precision == "bfloat16":
        return True
    if not str(device).startswith("cpu"):
        return False
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool(amx()) if amx is not None else False
    except Exception:  # older torch or unusual CPU: plain float32
        return False


def _openvino(lm, precision):
    """The network compiled by OpenVINO for the CPU (cached on the model), or None.

    OpenVINO runs this network 2-3x faster than eager PyTorch on CPU (measured on the 2-core
    development machine: 0.15 s against 0.28-0.42 s per megapixel, same outputs to 2e-5).
    Conversion takes a few seconds once per loaded model; any failure (OpenVINO missing, a
    layer it cannot convert) falls back to PyTorch.
    """
    key = (
        "bf16"
        if precision == "bfloat16" or (precision == "auto" and _use_bf16("auto", lm.device))
        else "f32"
    )
    if key in lm._compiled:
        return lm._compiled[key]
    compiled = None
    try:
        import openvino as ov
        import torch

        if "ir" not in lm._compiled:
            shape = (1, 1) + (max(32, 2 * lm.config["divisor"]),) * lm.spatial_dims
            with torch.no_grad():
                lm._compiled["ir"] = ov.convert_model(
                    _with_activation(lm.module, lm.config["activation"]),
                    example_input=torch.zeros(shape, device=lm.device),
                )
        compiled = ov.Core().compile_model(
            lm._compiled["ir"], "CPU", {"INFERENCE_PRECISION_HINT": key}
        )
    except Exception:  # noqa: BLE001 - any failure means: use the PyTorch path
        lm._compiled["ir"] = None
        compiled = None
    lm._compiled[key] = compiled
    return compiled


def _resolve_backend(backend, lm):
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch" or not lm.device.startswith("cpu"):
        if backend == "openvino":
            raise ValueError("backend='openvino' runs on the CPU only; use device='cpu'")
        return "torch"
    if backend == "openvino":
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            raise ValueError(
                "backend='openvino' needs the openvino package (pip install "
                "openvino); backend='auto' falls back to PyTorch"
            )
    return backend


def _activate(y, activation):
    """The model's output activation on a (B, C, ...) tensor (first output of a tuple)."""
    import torch

    if isinstance(y, (list, tuple)):
        y = y[0]
    y = y.float()
    if activation == "sigmoid":
        return torch.sigmoid(y)
    if activation == "softmax":
        return torch.softmax(y, dim=1)
    return y


def _with_activation(module, activation):
    """``module`` followed by its activation, as one network to convert."""
    import torch

    class Activated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.module = module

        def forward(self, x):
            return _activate(self.module(x), activation)

    return Activated().eval()


class _Runner:
    """Network call for a batch of normalized tiles: activation, precision, progress count."""

    def __init__(self, lm, *, precision, progress, total, backend="auto"):
        import torch

        self.lm = lm
        self.bf16 = _use_bf16(precision, lm.device)
        self.progress = progress
        self.total = total
        self.done = 0
        self.torch = torch
        self.compiled = None
        backend = _resolve_backend(backend, lm)
        if backend in ("auto", "openvino"):
            self.compiled = _openvino(lm, precision)
            if self.compiled is None and backend == "openvino":
                raise ValueError(f"OpenVINO could not convert the model {lm.name!r}")
        self.backend = "openvino" if self.compiled is not None else "torch"

    def __call__(self, x):
        """Probabilities of a (B, 1, *S) batch: an ndarray for an ndarray on the OpenVINO
        path (no PyTorch in between), else a tensor."""
        if self.compiled is not None:
            y = self.compiled([np.ascontiguousarray(np.asarray(x, np.float32))])[0]
            y = y if isinstance(x, np.ndarray) else self.torch.from_numpy(y)
        else:
            torch = self.torch
            x = torch.from_numpy(x) if isinstance(x, np.ndarray) else x
            if self.bf16:
                with torch.autocast(self.lm.device.split(":")[0], dtype=torch.bfloat16):
                    y = self.lm.module(x.to(self.lm.device))
            else:
                y = self.lm.module(x.to(self.lm.device))
            y = _activate(y, self.lm.config["activation"])
        self.done += x.shape[0]
        if self.progress is not None:
            self.progress(self.done, self.total)
        return y
