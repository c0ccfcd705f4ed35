"""U-Net inference speed: MP/s end to end, sliding-window overhead, FLOPs, share of matmul rate.

Run: ``python benchmarks/bench_unet.py [--model nuclei] [--repeats 3] [--no-4096]``

Prints, in one run (medians of ``--repeats``; the machine is noisy, compare ratios):

- FLOPs per pixel of the network (convolutions, counted with forward hooks);
- the float32 and bfloat16 2048^3 matmul rates (the reference for "share of peak");
- for 1024x1024 and 4096x4096 real-looking images (the packaged DSB 2018 sample, mirrored):
  ``segment`` end to end (normalization, tiles, blending, post-processing) in MP/s for eager
  PyTorch float32, OpenVINO float32 (when installed) and PyTorch bf16 autocast; the network
  alone; at 1024x1024 the sliding window over 256-pixel tiles against one full-image pass
  (the default tile of 1024); post-processing alone;
- object F1 (IoU 0.5) of each path on the packaged sample against its ground truth;
- the cost and the gain of ``diameter="auto"``: the sample at half size (nuclei ~14 pixels
  across, so the probe chooses an upsampled pass) against ``diameter=None``, in F1 and, at
  1024x1024, in MP/s with the scale chosen and the estimate's time over the rest of the run
  (with the full-size image too, where it finds nothing to do);
- the same on CUDA when a GPU is present.
"""

import argparse
import statistics
import time
from functools import partial
from pathlib import Path

import numpy as np
import tifffile

DATA = Path(__file__).resolve().parents[1] / "src" / "napari_binseg" / "data"


def median_time(func, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        func()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def matmul_rate(torch, dtype, device="cpu", n=2048, repeats=3):
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def run():
        a @ b
        sync()

    return 2 * n**3 / median_time(run, repeats) / 1e9


def flops_per_pixel(torch, module, size=256):
    total = [0.0]

    def hook(m, inputs, output):
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            total[0] += 2 * output.numel() * m.in_channels // m.groups * k
        elif isinstance(m, torch.nn.ConvTranspose2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            total[0] += 2 * inputs[0].numel() * m.out_channels // m.groups * k

    handles = [m.register_forward_hook(hook) for m in module.modules()]
    with torch.inference_mode():
        module(torch.zeros(1, 1, size, size, device=next(module.parameters()).device))
    for h in handles:
        h.remove()
    return total[0] / size**2


def half_size(image):
    """The image at half its pixel size (2x2 means): nuclei half as wide."""
    h, w = (s // 2 * 2 for s in image.shape)
    return image[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)).astype(np.float32)


def bench_image(size, *, shrink=False):
    image = tifffile.imread(DATA / "nuclei_175dbb364bfefc95.tif")
    if shrink:
        image = half_size(image)
    reps = (-(-size // image.shape[0]), -(-size // image.shape[1]))
    tiles = np.block(
        [
            [image if (i + j) % 2 == 0 else image[::-1, ::-1] for j in range(reps[1])]
            for i in range(reps[0])
        ]
    )
    return np.ascontiguousarray(tiles[:size, :size])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="nuclei")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-4096", action="store_true", help="skip the 4096x4096 image")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)

    import torch

    from napari_binseg.evaluation import evaluate
    from napari_binseg.unet import inference
    from napari_binseg.unet.backends import _openvino
    from napari_binseg.unet.network import load_model

    torch.set_num_threads(a.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    sample = tifffile.imread(DATA / "nuclei_175dbb364bfefc95.tif")
    truth = tifffile.imread(DATA / "nuclei_175dbb364bfefc95_labels.tif")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {a.model!r}")

    for device in devices:
        lm = load_model(a.model, device=device)
        fpp = flops_per_pixel(torch, lm.module) if lm.config.get("network") else float("nan")
        f32_rate = matmul_rate(torch, torch.float32, device)
        bf16_rate = matmul_rate(torch, torch.bfloat16, device)
        print(f"\n== {device}: {lm!r}")
        print(f"network: {fpp / 1e3:.1f} kFLOP per pixel")
        print(f"matmul 2048^3: float32 {f32_rate:.0f} GFLOP/s, bf16 {bf16_rate:.0f} GFLOP/s")
        configs = [("torch", "float32")]
        if device == "cpu":
            if _openvino(lm, "float32") is not None:
                configs.append(("openvino", "float32"))
            configs.append(("torch", "bfloat16"))
        scores = {}
        for backend, prec in configs:
            labels = inference.segment(sample, lm, device=device, precision=prec, backend=backend)
            scores[f"{backend} {prec}"] = float(
                evaluate(truth, labels, thresholds=[0.5])["f1"].iloc[0]
            )
        print(
            "object F1@0.5 on the packaged sample: "
            + ", ".join(f"{k} {v:.4f}" for k, v in scores.items())
        )
        auto = inference._Runner(lm, precision="auto", progress=None, total=1)
        print(
            f"defaults (backend='auto', precision='auto') run: {auto.backend}, "
            f"{'bfloat16' if auto.bf16 and auto.backend == 'torch' else 'float32'}"
        )

        sizes = [1024] + ([] if a.no_4096 else [4096])
        for size in sizes:
            image = bench_image(size)
            mp = size * size / 1e6
            reps = a.repeats if size <= 1024 else 1
            print(f"\n{size}x{size} ({mp:.1f} MP), median of {reps}:")
            inference.segment(image[:256, :256], lm, device=device)  # warm-up, numba compile
            for backend, prec in configs:
                if size > 1024 and prec == "bfloat16" and not auto.bf16:
                    continue  # slow emulated bf16 (no AMX): measured at 1024 only
                kw = dict(device=device, precision=prec, backend=backend)
                t_seg = median_time(partial(inference.segment, image, lm, **kw), reps)
                t_net = median_time(partial(inference.predict_channels, image, lm, **kw), reps)
                rate = f32_rate if prec == "float32" else bf16_rate
                share = fpp * mp * 1e6 / t_net / 1e9 / rate
                line = (
                    f"  {backend:8s} {prec:8s}: segment end to end {t_seg:.3f} s = "
                    f"{mp / t_seg:.2f} MP/s; network alone (default tiles) {t_net:.3f} s "
                    f"= {mp / t_net:.2f} MP/s, {100 * share:.0f}% of the {prec} matmul rate"
                )
                if size <= 1024:
                    t_256 = median_time(
                        partial(inference.predict_channels, image, lm, tile_size=256, **kw), reps
                    )
                    line += (
                        f"; 256-px tiles (overlap 0.25) {t_256:.3f} s = x{t_256 / t_net:.2f}"
                        f" the one-pass time"
                    )
                print(line)
            probs = inference.predict_channels(image, lm, device=device)
            t_post = median_time(partial(inference.labels_from_probabilities, probs, lm), reps)
            print(f"  post-processing alone {t_post:.3f} s ({mp / t_post:.1f} MP/s)")
            if size <= 1024:
                bench_diameter(inference, lm, device, size, reps)

        small = half_size(sample)
        small_truth = truth[: 2 * small.shape[0] : 2, : 2 * small.shape[1] : 2]
        f1 = {}
        for d in ("auto", None):
            labels = inference.segment(small, lm, device=device, diameter=d)
            f1[d] = float(evaluate(small_truth, labels, thresholds=[0.5])["f1"].iloc[0])
        print(
            f"\nsample at half size: object F1@0.5 diameter='auto' {f1['auto']:.4f}, "
            f"diameter=None {f1[None]:.4f}"
        )


def bench_diameter(inference, lm, device, size, reps):
    """segment with diameter='auto' against None, on the bench image and at half nucleus size."""
    for label, image in (
        ("full-size nuclei", bench_image(size)),
        ("half-size nuclei", bench_image(size, shrink=True)),
    ):
        info = inference.segment(image, lm, device=device, return_info=True)[1]
        t_none = median_time(
            partial(inference.segment, image, lm, device=device, diameter=None), reps
        )
        t_auto = median_time(partial(inference.segment, image, lm, device=device), reps)
        mp = image.size / 1e6
        cost = info["estimate_seconds"] / (info["seconds"] - info["estimate_seconds"])
        print(
            f"  diameter='auto' on {label} (scale {info['scales'][0]}, estimate "
            f"{100 * cost:.0f}% of the rest): {mp / t_auto:.2f} MP/s against "
            f"{mp / t_none:.2f} MP/s with diameter=None (x{t_auto / t_none:.2f} the time)"
        )


if __name__ == "__main__":
    main()
