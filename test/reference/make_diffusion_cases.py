"""Writes the sampler-step parity cases under test/fixtures/parity/ (format:
../shared/design/parity-cases.md, module "diffusion", methods "step" and "strided_step").

Run with Debian's python:  /usr/bin/python3 test/reference/make_diffusion_cases.py

Each case is one step of kandinsky_diffusion.Diffusion on a batch whose rows sit at different step
indices (t = 0 included, where the noise is dropped). Inputs are f32; the step is computed in
float64 and stored as f32. weights.safetensors is an empty safetensors file (no tensors).
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, HERE)
from kandinsky_diffusion import Diffusion  # noqa: E402
from make_movq_cases import write_case  # noqa: E402

SOURCE = ("test/reference/make_diffusion_cases.py (kandinsky_diffusion.py, written from spec section 2; "
          "f32 betas as upstream, derived coefficients and the step in float64)")

CASES = [
    # name, schedule, timesteps, percentile, v_prediction, shape, t per row, x scale per row, seed
    ("diffusion_eps_cosine", "cosine", 50, 0.98, False, (5, 4, 8, 8), [49, 30, 10, 1, 0],
     [1.0, 1.0, 1.0, 0.3, 1.0], 11,
     "keyframe sampler: eps-prediction, 50-step cosine, percentile 0.98 (row 3 is small, so its "
     "threshold is the floor 1)"),
    ("diffusion_v_cosine", "cosine", 50, 0.98, True, (4, 12, 8, 8), [49, 25, 3, 0],
     [1.0, 1.0, 0.3, 1.0], 12,
     "interpolation sampler: v-prediction, 50-step cosine, percentile 0.98, 12-channel groups"),
    ("diffusion_eps_linear_noclip", "linear", 100, None, False, (4, 4, 8, 8), [99, 50, 7, 0],
     [1.0, 1.0, 1.0, 1.0], 13,
     "eps-prediction, 100-step linear schedule, no percentile (x0 clipped to [-1, 1])"),
]

STRIDED_CASES = [
    # name, eta, shape, t per row, prev_t per row, x scale per row, seed
    ("diffusion_strided_kandinsky3", 1.0, (4, 4, 8, 8), [999, 519, 39, 19], [979, 499, 19, 0],
     [1.0, 1.0, 0.3, 1.0], 14,
     "Kandinsky 3.0 sampler: 1000-step cosine, percentile 0.99, strided steps of 20 with eta 1 "
     "(row 2 small: threshold floor 1; row 3 the last step to index 0, no noise)"),
    ("diffusion_strided_eta0", 0.0, (3, 4, 8, 8), [999, 499, 333], [666, 166, 0],
     [1.0, 1.0, 1.0], 15,
     "Kandinsky 3.0 sampler with eta 0 (deterministic DDIM), stride 333 as for 3 steps"),
]


def main():
    torch.set_num_threads(1)
    for name, schedule, n, p, v, shape, ts, scales, seed, what in CASES:
        g = torch.Generator().manual_seed(seed)
        scale = torch.tensor(scales, dtype=torch.float32).reshape(-1, *((1,) * (len(shape) - 1)))
        x = torch.randn(*shape, generator=g, dtype=torch.float32) * scale
        pred = torch.randn(*shape, generator=g, dtype=torch.float32) * scale
        noise = torch.randn(*shape, generator=g, dtype=torch.float32)
        t = torch.tensor(ts, dtype=torch.int64)
        out = Diffusion(schedule, n, p).step(x, t, pred, noise, v_prediction=v).float()
        write_case(name, "diffusion", {"schedule": schedule, "timesteps": n, "percentile": p}, "step",
                   {"v_prediction": v}, {}, {"x": x, "t": t, "pred": pred, "noise": noise}, {"out": out},
                   SOURCE + "; " + what)
    for name, eta, shape, ts, prevs, scales, seed, what in STRIDED_CASES:
        g = torch.Generator().manual_seed(seed)
        scale = torch.tensor(scales, dtype=torch.float32).reshape(-1, *((1,) * (len(shape) - 1)))
        x = torch.randn(*shape, generator=g, dtype=torch.float32) * scale
        pred = torch.randn(*shape, generator=g, dtype=torch.float32) * scale
        noise = torch.randn(*shape, generator=g, dtype=torch.float32)
        t = torch.tensor(ts, dtype=torch.int64)
        prev_t = torch.tensor(prevs, dtype=torch.int64)
        out = Diffusion("cosine", 1000, 0.99).strided_step(x, t, prev_t, pred, noise, eta).float()
        write_case(name, "diffusion", {"schedule": "cosine", "timesteps": 1000, "percentile": 0.99},
                   "strided_step", {"eta": eta}, {},
                   {"x": x, "t": t, "prev_t": prev_t, "pred": pred, "noise": noise}, {"out": out},
                   SOURCE + "; " + what)


if __name__ == "__main__":
    main()
