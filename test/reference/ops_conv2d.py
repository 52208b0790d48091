"""Fixtures for conv2d and conv_transpose2d (test/fixtures/ops/conv2d.safetensors).

Run with Debian's /usr/bin/python3 (torch 1.13). Inputs are f32 (weights f16
where a case says so); references are computed in f64 from exactly the values
stored and rounded to f32, so a test measures our error, not torch's f32
rounding. Sizes are deliberately not multiples of the kernel's tiles (4
pixels × 4 channels per quad, 8·NQ-channel blocks).
"""
import json
import os

import torch
import torch.nn.functional as F

from st import save_file

torch.manual_seed(0)
tensors = {}
meta = {}


def rand(*shape):
    return torch.randn(*shape).float()


def add(name, params, args, out):
    meta[name] = json.dumps(params)
    for k, v in args.items():
        tensors[f"{name}.{k}"] = v
    tensors[f"{name}.out"] = out.float()


def conv_case(name, n, c, h, w, o, k, stride=1, padding=(0, 0, 0, 0), f16=False, bias=True):
    """padding = (top, bottom, left, right), as the op takes it."""
    x = rand(n, c, h, w)
    weight = rand(o, c, k, k) / (c * k * k) ** 0.5
    if f16:
        weight = weight.half()
    b = rand(o) if bias else None
    top, bottom, left, right = padding
    xp = F.pad(x.double(), (left, right, top, bottom))
    y = F.conv2d(xp, weight.double(), None if b is None else b.double(), stride=stride)
    args = {"x": x, "weight": weight}
    if b is not None:
        args["bias"] = b
    add(name, {"stride": stride, "padding": list(padding), "f16": f16}, args, y)


def transpose_case(name, n, c, h, w, o, f16=False):
    x = rand(n, c, h, w)
    weight = rand(c, o, 2, 2) / c ** 0.5
    if f16:
        weight = weight.half()
    b = rand(o)
    y = F.conv_transpose2d(x.double(), weight.double(), b.double(), stride=2)
    add(name, {"f16": f16}, {"x": x, "weight": weight, "bias": b}, y)


# The models' kinds: 3×3 padding 1, 1×1, 2×2 stride 2, MoVQ's 3×3 stride 2 padded right/bottom.
conv_case("k3p1", 2, 5, 7, 9, 6, 3, padding=(1, 1, 1, 1))
conv_case("k3p1_wide", 1, 3, 6, 10, 40, 3, padding=(1, 1, 1, 1))
conv_case("k1", 1, 12, 6, 6, 10, 1)
conv_case("k1_odd", 3, 7, 5, 3, 5, 1, bias=False)
conv_case("k2s2", 2, 6, 8, 10, 9, 2, stride=2)
conv_case("k3s2_movq", 1, 5, 9, 11, 6, 3, stride=2, padding=(0, 1, 0, 1))
# Any small kernel, stride and padding.
conv_case("k5s3", 2, 4, 11, 8, 3, 5, stride=3, padding=(2, 1, 0, 2))
conv_case("k3p1_f16", 2, 6, 5, 7, 7, 3, padding=(1, 1, 1, 1), f16=True)
conv_case("k1_f16", 1, 9, 4, 4, 13, 1, f16=True)
transpose_case("t2", 2, 5, 3, 4, 7)
transpose_case("t2_f16", 1, 8, 4, 5, 6, f16=True)

out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ops", "conv2d.safetensors")
save_file(tensors, out, meta)
print(f"wrote {os.path.normpath(out)}: {len(meta)} cases, {os.path.getsize(out)} bytes")
