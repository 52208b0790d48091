"""Fixtures for the matmul kernels (test/fixtures/ops/matmul.safetensors).

Run from the repository root with Debian's /usr/bin/python3 (torch 1.13).
Inputs are f32 in [-1, 1); f16 weights are stored as F16 (the values the
kernel reads). References are computed in f64 from exactly those values and
rounded to f32, so a test measures our error against the exact product.

Shapes are chosen off the kernels' tiles (32 x 64 subgroup tiles, 64 x 64
workgroup tiles, steps of 4 along K): odd sizes, K not a multiple of 4,
several tiles in each direction, batches with B shared or per batch.
"""
import json
import os

import torch

from st import save_file

torch.manual_seed(0)
tensors = {}
meta = {}


def rand(*shape):
    return torch.rand(*shape) * 2 - 1


def matmul_case(name, a_shape, b_shape, transpose_a=False, transpose_b=False, bias=False, f16=False):
    a, b = rand(*a_shape), rand(*b_shape)
    if f16:
        b = b.half()
    am = a.double().transpose(-1, -2) if transpose_a else a.double()
    bm = b.double().transpose(-1, -2) if transpose_b else b.double()
    out = torch.matmul(am, bm)
    args = {"a": a, "b": b}
    if bias:
        args["bias"] = rand(out.shape[-1])
        out = out + args["bias"].double()
    meta[name] = json.dumps({"op": "matmul", "transposeA": transpose_a, "transposeB": transpose_b})
    for k, v in args.items():
        tensors[f"{name}.{k}"] = v
    tensors[f"{name}.out"] = out.float()


def linear_case(name, x_shape, n, bias=True, f16=False):
    x, w = rand(*x_shape), rand(n, x_shape[-1])
    if f16:
        w = w.half()
    args = {"x": x, "weight": w}
    b = None
    if bias:
        b = args["bias"] = rand(n)
    out = torch.nn.functional.linear(x.double(), w.double(), None if b is None else b.double())
    meta[name] = json.dumps({"op": "linear"})
    for k, v in args.items():
        tensors[f"{name}.{k}"] = v
    tensors[f"{name}.out"] = out.float()


# Plain layout, K not a multiple of 4, sizes off every tile.
matmul_case("plain", (37, 29), (29, 45), bias=True)
# PyTorch's weight layout (B transposed), A batched, B shared by the batches.
matmul_case("trans_b", (2, 33, 64), (70, 64), transpose_b=True, bias=True)
# A transposed, B batched.
matmul_case("trans_a", (3, 24, 9), (3, 24, 130), transpose_a=True)
# Both transposed, K = 7.
matmul_case("trans_ab", (7, 65), (33, 7), transpose_a=True, transpose_b=True, bias=True)
# f16 B in the plain layout (each value its own half word), odd K.
matmul_case("f16_plain", (2, 17, 23), (23, 19), f16=True)
# Linear layers: several tiles each way, f32 and f16 weights.
linear_case("linear", (130, 320), 200)
linear_case("linear_f16", (2, 5, 96), 136, f16=True)
# f16 weight rows that start mid-word (K odd), no bias.
linear_case("linear_f16_odd_k", (40, 37), 50, bias=False, f16=True)

path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ops", "matmul.safetensors")
os.makedirs(os.path.dirname(path), exist_ok=True)
save_file(tensors, path, meta)
print(f"wrote {path}: {len(meta)} cases, {os.path.getsize(path)} bytes")
