"""How fast one model's convolutions run, layer by layer: what bounds the ResNets' speed-up on a CPU.

For the 3x3 layers of the benchmark's ResNet-8 (width 16, batch 128, 32x32 inputs: 16->16 at 32x32,
32->32 at 16x16, 64->64 at 8x8) this times oneDNN's forward, input-gradient and weight-gradient
kernels (``aten.convolution_backward``) in channels-last memory (what the engine runs) and in NCHW
(what a plain loop runs), float32, and reports each as GFLOP/s and as a share of a large matmul's
rate measured in the same run. When the engine's convolutions already run near that rate, a faster
engine needs faster kernels, not more stacking.

    python benchmarks/bench_conv_layers.py [--repeat 20] [--out f.json]
"""

from __future__ import annotations

import argparse
import time

from _output import emit  # benchmarks/ is on sys.path when a script runs
from bench_training import matmul_peak  # the peak every benchmark compares to

LAYERS = [(16, 16, 32), (32, 32, 16), (64, 64, 8)]  # (in, out, height = width)
BATCH = 128


def _seconds(fn, repeat: int) -> float:
    """The minimum of ``repeat`` timed calls after two warm-up calls."""
    fn()
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def layer_rates(c_in: int, c_out: int, size: int, channels_last: bool, repeat: int) -> dict[str, float]:
    """GFLOP/s of the forward, the input gradient and the weight gradient of one 3x3 layer."""
    import torch
    import torch.nn.functional as F

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(BATCH, c_in, size, size).contiguous(memory_format=fmt)
    w = torch.randn(c_out, c_in, 3, 3).contiguous(memory_format=fmt)
    gy = torch.randn_like(F.conv2d(x, w, padding=1))
    flops = 2 * BATCH * size * size * c_in * c_out * 9

    def backward(mask: list[bool]):
        return lambda: torch.ops.aten.convolution_backward(
            gy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask
        )

    times = {
        "forward": _seconds(lambda: F.conv2d(x, w, padding=1), repeat),
        "input_gradient": _seconds(backward([True, False, False]), repeat),
        "weight_gradient": _seconds(backward([False, True, False]), repeat),
    }
    return {k: round(flops / t / 1e9, 1) for k, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    import torch

    peak = matmul_peak("cpu")
    layers = {}
    for c_in, c_out, size in LAYERS:
        for layout, cl in (("channels_last", True), ("nchw", False)):
            rates = layer_rates(c_in, c_out, size, cl, args.repeat)
            rates.update({f"{k}_pct_of_matmul": round(100 * v / peak, 1) for k, v in list(rates.items())})
            layers[f"{c_in}->{c_out} {size}x{size} {layout}"] = rates
    emit({
        "machine": {"threads": torch.get_num_threads(), "torch": torch.__version__, "matmul_gflops": round(peak, 1)},
        "batch": BATCH, "layers": layers,
    }, args.out)


if __name__ == "__main__":
    main()
