"""U-Net on a z-stack: plane by plane against the fast and accurate 3D modes.

Each run (plane by plane ``segment(axes="TYX")`` with the default ``diameter="auto"`` and
with one pass per plane, ``diameter=None``; ``mode="fast"``; ``mode="accurate"``) goes in its
own process on the same synthetic anisotropic stack (``synthetic_stack``, dense touching
nuclei, z step 2x the pixel), after a warm-up call (model load, OpenVINO conversion). Printed:
wall and CPU seconds (CPU time is steadier on a shared machine), ratios to plane by plane
(default), peak resident memory above the process's peak
before the call (input, model and warm-up) and in all, object F1 at IoU 0.5 and the count
error against the exact labels. The 3D modes also print their peak in bytes per voxel (of the
accurate mode's isotropic stack; of the input for the fast mode) and the ratio of
``volume.memory_need``'s estimate (the one the memory guard uses) to the measured peak.

    python benchmarks/bench_3d.py                       # 64x512x512, spacing (2, 1, 1)
    python benchmarks/bench_3d.py --shape 32x256x256    # smaller, a few seconds a run
    python benchmarks/bench_3d.py --runs fast,accurate --radius 4.5   # upsampled 2.5x

Targets (issue 14): fast <= 1.3x and accurate <= 4x the plane-by-plane time.

Memory (session 9; peak above the warm-up's RSS, labels identical before and after):

=====================================  ==============  ==============  ================
stack, spacing                         isotropic        before MB       after MB (B/iso)
=====================================  ==============  ==============  ================
32x256x256, 4,1,1 (accurate)           128x256x256     248             152 (19)
32x512x512, 4,1,1 (accurate)           128x512x512     744             568 (18)
8x128x128, 2,1,1, radius 4.5 (2.5x)    40x320x320      107             69 (18)
32x512x512, 4,1,1 (fast)               (input)         257             209 (26 B/input)
=====================================  ==============  ==============  ================
"""

import argparse
import json
import re
import resource
import subprocess
import sys
import time

RUNS = ("planes", "planes_1pass", "fast", "accurate")


def _reset_peak():
    """Start the peak RSS again from the current RSS (Linux), so the warm-up's higher peak
    does not hide the call's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _rss_mb():
    try:
        with open("/proc/self/status") as f:
            return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1)) / 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(run, shape, spacing, seed, device, model="nuclei", radius=9.0):
    import numpy as np

    import napari_binseg as nb
    from napari_binseg.unet import load_model, segment, volume

    image, truth = nb.synthetic_stack(shape, spacing=spacing, radius=radius, seed=seed)
    lm = load_model(model, device=device)
    segment(image[len(image) // 2, :128, :128], lm)  # warm-up: conversion, kernels
    kw = {
        "planes": {"axes": "TYX"},  # the default diameter="auto", per plane
        "planes_1pass": {"axes": "TYX", "diameter": None},  # one pass per plane, no resizing
    }.get(run, {"mode": run, "spacing": spacing})
    _reset_peak()
    before = _rss_mb()
    t, cpu = time.perf_counter(), _cpu_s()
    labels, info = segment(image, lm, return_info=True, **kw)
    seconds, cpu = time.perf_counter() - t, _cpu_s() - cpu
    peak = _rss_mb() - before
    memory = {}
    if run in ("fast", "accurate"):
        lateral = (spacing[1] * spacing[2]) ** 0.5
        found = info["diameter"] and info["diameter"] * lateral
        scale = volume._scale_of(found, lm, spacing)
        voxels = np.prod(volume._iso_shape(shape, spacing, scale) if run == "accurate" else shape)
        estimate = volume.memory_need(shape, spacing, scale, mode=run)
        memory = {
            "bytes_per_voxel": peak * 2**20 / voxels,
            "estimate_ratio": estimate / 2**20 / peak,
        }
    row = nb.evaluate(truth, labels, thresholds=[0.5]).iloc[0]
    n_true, n_pred = int(row["n_true"]), int(row["n_pred"])
    print(
        json.dumps(
            {
                "run": run,
                "seconds": seconds,
                "cpu_seconds": cpu,
                "peak_mb": peak,
                "peak_total_mb": _rss_mb(),
                "input_mb": image.nbytes / 2**20,
                "f1": float(row["f1"]),
                "n_true": n_true,
                "n_pred": n_pred,
                "count_error": (n_pred - n_true) / max(n_true, 1),
                "objects_spanning_planes": int(
                    np.count_nonzero(np.bincount(labels[1:][labels[1:] == labels[:-1]]))
                ),
                **memory,
            }
        )
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="64x512x512")
    parser.add_argument("--spacing", default="2,1,1")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="nuclei", help="model name or folder")
    parser.add_argument("--radius", type=float, default=9.0, help="mean nucleus radius")
    parser.add_argument(
        "--runs", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}"
    )
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.lower().split("x"))
    spacing = tuple(float(s) for s in args.spacing.split(","))
    if args.child:
        child(args.child, shape, spacing, args.seed, args.device, args.model, args.radius)
        return
    runs = args.runs.split(",")
    if not set(runs) <= set(RUNS):
        parser.error(f"--runs: one of {RUNS}, got {args.runs!r}")
    results = {}
    for run in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--child", run, "--shape", args.shape,
             "--spacing", args.spacing, "--seed", str(args.seed), "--device", args.device,
             "--model", args.model, "--radius", str(args.radius)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        results[run] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results[runs[0]]["seconds"]
    base_cpu = results[runs[0]]["cpu_seconds"]
    print(f"stack {args.shape} spacing {spacing} seed {args.seed} device {args.device}")
    print(
        f"{'run':12s} {'s':>8s} {'ratio':>6s} {'cpu s':>7s} {'ratio':>6s} {'+peak MB':>8s} "
        f"{'peak MB':>8s} {'F1@0.5':>7s} "
        f"{'count':>12s}"
    )
    for run, r in results.items():
        print(
            f"{run:12s} {r['seconds']:8.2f} {r['seconds'] / base:6.2f} {r['cpu_seconds']:7.1f} "
            f"{r['cpu_seconds'] / base_cpu:6.2f} {r['peak_mb']:8.0f} "
            f"{r['peak_total_mb']:8.0f} "
            f"{r['f1']:7.3f} {r['n_pred']:5d}/{r['n_true']:<5d} ({100 * r['count_error']:+.1f}%)"
            + (
                f"  {r['bytes_per_voxel']:.1f} B/voxel, estimate {r['estimate_ratio']:.2f}x"
                if "bytes_per_voxel" in r
                else ""
            )
        )
    print(f"input {results[runs[0]]['input_mb']:.0f} MB; ratios to {runs[0]}")


if __name__ == "__main__":
    main()
