"""Checkpoints of a training run: tensors as safetensors plus JSON, never pickled objects."""

import json
from pathlib import Path


def save_checkpoint(folder, net, best, opt, sampler, state):
    """Network, best weights, optimizer and RNG states as safetensors plus JSON (no pickle)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    tensors |= {f"best.{k}": v.contiguous() for k, v in best.items()}
    opt_state = opt.state_dict()
    for idx, values in opt_state["state"].items():
        for key, value in values.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(folder / "checkpoint.safetensors.tmp"))
    (folder / "checkpoint.safetensors.tmp").replace(folder / "checkpoint.safetensors")
    meta = dict(
        state,
        param_groups=opt_state["param_groups"],
        sampler_rng=sampler.rng.bit_generator.state,
    )
    (folder / "checkpoint.json.tmp").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / "checkpoint.json.tmp").replace(folder / "checkpoint.json")


_STATE_KEYS = ("step", "history", "best_f1", "best_step", "param_groups", "sampler_rng")


def _read(folder):
    """Tensors and JSON of a checkpoint folder; ValueError for anything else."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if folder.is_file() and folder.name.startswith("checkpoint."):
        folder = folder.parent  # the checkpoint's .safetensors or .json file was named
    if not (folder / "checkpoint.safetensors").is_file():
        raise ValueError(f"resume: {folder} holds no checkpoint.safetensors")
    try:
        tensors = load_file(str(folder / "checkpoint.safetensors"))
    except Exception as exc:  # safetensors raises its own error types on garbage
        raise ValueError(
            f"resume: {folder / 'checkpoint.safetensors'} is not a readable checkpoint ({exc})"
        ) from None
    try:
        meta = json.loads((folder / "checkpoint.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"resume: cannot read {folder / 'checkpoint.json'} ({exc})") from None
    missing = [k for k in _STATE_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing or "rng.torch" not in tensors:
        raise ValueError(
            f"resume: {folder} is not a napari-binseg training checkpoint "
            f"(missing {missing or ['rng.torch']})"
        )
    return tensors, meta


def load_checkpoint(folder, net, opt, sampler):
    """Restore what :func:`save_checkpoint` wrote; returns its JSON state and best weights.

    Raises
    ------
    ValueError
        A folder without a checkpoint, unreadable or foreign files, or a checkpoint of
        another network or optimizer.
    """
    import torch

    tensors, meta = _read(folder)
    net_state = {k[4:]: v for k, v in tensors.items() if k.startswith("net.")}
    try:
        net.load_state_dict(net_state)
    except RuntimeError as exc:
        raise ValueError(f"resume: the checkpoint does not fit the network: {exc}") from None
    opt_state = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, idx, name = key.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = value
    try:
        opt.load_state_dict({"state": opt_state, "param_groups": meta.pop("param_groups")})
        torch.set_rng_state(tensors["rng.torch"])
        sampler.rng.bit_generator.state = meta.pop("sampler_rng")
    except (ValueError, TypeError, KeyError, RuntimeError) as exc:
        raise ValueError(
            f"resume: the checkpoint's optimizer or RNG state is invalid ({exc})"
        ) from None
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    return meta, best
