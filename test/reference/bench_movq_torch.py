"""PyTorch peer of bench/movq.bench.ts: the real image-MoVQ decode of one 256x256 frame (32x32
latent) on this CPU, f32, 2 threads, random weights (kandinsky_movq.init_params).

Run with Debian's python (torch 1.13), from the repository root:
  /usr/bin/python3 test/reference/bench_movq_torch.py            # warm-up + 5 timed runs, prints the median
  /usr/bin/python3 test/reference/bench_movq_torch.py --serve    # line protocol for the TypeScript bench

--serve prints "ready <gflop>" once the model is built, then for every line "run" on stdin decodes
once and prints "done <ms>"; it exits at end of input. The TypeScript bench times the round trip,
so its timing and this script's cover the same work (model building excluded).
"""
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import kandinsky_movq as km  # noqa: E402

# spec section 5, the real image MoVQ (Kandinsky 3 / Kandinsky Video 1.0 generator_params)
REAL = {
    "double_z": False,
    "z_channels": 4,
    "resolution": 256,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 256,
    "ch_mult": [1, 2, 2, 4],
    "num_res_blocks": 2,
    "attn_resolutions": [32],
    "dropout": 0.0,
}
LATENT = (1, 4, 32, 32)


class DecoderOnly(nn.Module):
    """post_quant_conv + decoder with upstream's key names (the encoder is not needed)."""

    def __init__(self, config):
        super().__init__()
        z = config["z_channels"]
        self.post_quant_conv = nn.Conv2d(z, z, 1)
        self.decoder = km.Decoder(zq_ch=z, **config)

    @torch.no_grad()
    def decode(self, quant):
        return self.decoder(self.post_quant_conv(quant), quant)


def build():
    torch.set_num_threads(2)
    model = km.init_params(DecoderOnly(REAL), seed=0).eval()
    quant = torch.randn(*LATENT, generator=torch.Generator().manual_seed(1))
    return model, quant


def main():
    model, quant = build()
    if "--serve" in sys.argv:
        print("ready", flush=True)
        for line in sys.stdin:
            if line.strip() != "run":
                continue
            t0 = time.perf_counter()
            model.decode(quant)
            print(f"done {(time.perf_counter() - t0) * 1e3:.3f}", flush=True)
        return
    model.decode(quant)  # warm-up
    ms = []
    for _ in range(5):
        t0 = time.perf_counter()
        out = model.decode(quant)
        ms.append((time.perf_counter() - t0) * 1e3)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads: decode {tuple(out.shape)} "
          f"median {statistics.median(ms):.1f} ms (runs: {', '.join(f'{m:.0f}' for m in ms)})")


if __name__ == "__main__":
    main()
