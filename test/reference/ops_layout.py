"""Fixtures for the layout family (src/ops/layout.ts): test/fixtures/ops/layout.safetensors.

Run with Debian's /usr/bin/python3 (python3-torch). Each case stores its
inputs as '<case>.<arg>', the result as '<case>.out' and its parameters
(with "op", the wrapper to call) as JSON metadata under the case name.
"""
import json
import math
import os

import torch
import torch.nn.functional as F

from st import save_file

torch.manual_seed(0)
tensors = {}
meta = {}


def case(name, op, inputs, out, **params):
    for k, v in inputs.items():
        tensors[f"{name}.{k}"] = v
    tensors[f"{name}.out"] = out
    meta[name] = json.dumps({"op": op, **params})


def rand(*shape):
    return torch.rand(*shape) * 2 - 1


def sinusoidal(x, dim):
    # Upstream SinusoidalPosEmb (model/nn.py), verbatim.
    half_dim = dim // 2
    emb = math.log(10000) / (half_dim - 1)
    emb = torch.exp(torch.arange(half_dim, device=x.device) * -emb)
    emb = x[:, None] * emb[None, :]
    return torch.cat((emb.sin(), emb.cos()), dim=-1)


# Nearest resize: 2x (torch's exact >>1 path), non-integer up/down scales, and
# 14 -> 20 where f32(in/out) rounds below 0.7.
for name, shape, size in [
    ("up2x_a", (2, 3, 5, 7), None),
    ("up2x_b", (1, 1, 1, 3), None),
    ("resize_a", (2, 3, 5, 7), (9, 4)),
    ("resize_b", (1, 2, 14, 7), (20, 10)),
    ("resize_c", (1, 1, 6, 10), (15, 3)),
]:
    x = rand(*shape)
    if size is None:
        case(name, "upsampleNearest2x", {"x": x}, F.interpolate(x, scale_factor=2.0, mode="nearest"))
    else:
        case(name, "resizeNearest", {"x": x}, F.interpolate(x, size=size, mode="nearest"), size=list(size))

# pad2d takes [top, bottom, left, right]; F.pad takes (left, right, top, bottom).
for name, shape, pads, value in [
    ("pad_a", (2, 3, 5, 7), (0, 1, 0, 1), 0.0),
    ("pad_b", (1, 2, 3, 4), (2, 1, 3, 0), -1.5),
    ("pad_c", (3, 5, 1), (1, 2, 2, 3), 0.25),
]:
    x = rand(*shape)
    t, b, l, r = pads
    case(name, "pad2d", {"x": x}, F.pad(x, (l, r, t, b), value=value), pads=list(pads), value=value)

for name, shapes, dim in [
    ("cat_a", [(2, 3, 4, 5), (2, 5, 4, 5)], 1),
    ("cat_b", [(1, 7), (3, 7), (2, 7)], 0),
    ("cat_c", [(2, 3, 4), (2, 3, 1)], -1),
]:
    xs = [rand(*s) for s in shapes]
    case(name, "concat", {f"x{i}": x for i, x in enumerate(xs)}, torch.cat(xs, dim), dim=dim, n=len(xs))

for name, shape, perm in [
    ("perm_a", (2, 3, 4, 5), (0, 2, 3, 1)),  # NCHW -> NHWC
    ("perm_b", (2, 3, 4, 5, 6), (0, 2, 1, 3, 4)),  # (b,t,c,h,w) -> (b,c,t,h,w)
    ("perm_c", (2, 5, 3, 4), (0, 2, 1, 3)),  # heads split
    ("perm_d", (2, 3, 4, 5, 3), (4, 2, 0, 3, 1)),  # nothing coalesces
]:
    x = rand(*shape)
    case(name, "permute", {"x": x}, x.permute(*perm).contiguous(), perm=list(perm))
x = rand(3, 5, 7)
case("transpose_a", "transpose", {"x": x}, x.transpose(0, 2).contiguous(), dims=[0, 2])
x = rand(4, 9)
case("transpose_b", "transpose", {"x": x}, x.transpose(-1, -2).contiguous(), dims=[-1, -2])

for name, shape, dim, start, length in [
    ("slice_a", (4, 5, 6), 1, 2, 3),
    ("slice_b", (7, 9), 0, 3, 4),
    ("slice_c", (3, 4, 7), 2, 5, 1),
    ("slice_d", (2, 3, 5), -1, 0, 5),
]:
    x = rand(*shape)
    case(name, "slice", {"x": x}, x.narrow(dim, start, length).contiguous(), dim=dim, start=start, length=length)

for name, shape in [("tokens_a", (2, 9, 13)), ("tokens_b", (3, 1, 5)), ("tokens_c", (1, 300, 3))]:
    x = rand(*shape)
    case(name, "meanTokens", {"x": x}, x.mean(1))
for name, shape, dim in [("mean_a", (4, 5, 6), -1), ("mean_b", (7, 3), 0), ("mean_c", (2, 517), 1)]:
    x = rand(*shape)
    case(name, "mean", {"x": x}, x.mean(dim), dim=dim)

# Softmax: short and long (> workgroup) rows, a middle dim, large logits, and
# attention-style masked keys at -FLT_MAX (one row fully masked).
for name, x, dim in [
    ("softmax_a", rand(3, 17) * 4, -1),
    ("softmax_b", rand(2, 5, 300) * 8, -1),
    ("softmax_c", rand(4, 6, 5) * 4, 1),
    ("softmax_d", rand(3, 7) * 60, -1),
]:
    case(name, "softmax", {"x": x}, torch.softmax(x, dim), dim=dim)
x = rand(3, 9) * 4
m = torch.rand(3, 9) < 0.4
m[2] = True
x = x.masked_fill(m, torch.finfo(torch.float32).min)
case("softmax_mask", "softmax", {"x": x}, torch.softmax(x, -1), dim=-1)

# Embedding: f32 and f16 tables (odd D), ids of rank 1 and 2.
for name, vocab, dim, ids_shape, dtype in [
    ("embed_a", 37, 11, (2, 5), torch.float32),
    ("embed_b", 29, 7, (9,), torch.float16),
    ("embed_c", 50, 16, (3, 4), torch.float16),
]:
    table = rand(vocab, dim).to(dtype)
    ids = torch.randint(0, vocab, ids_shape, dtype=torch.int32)
    case(name, "embedding", {"ids": ids, "table": table}, F.embedding(ids.long(), table).float())

# Sinusoidal: the U-Net's time embedding (dim 192, times up to 999) and the
# keyframe temporal positions arange(0, 180, 12); f32 fractional positions.
times = torch.tensor([0, 1, 17, 250, 500, 777, 980, 999], dtype=torch.int32)
case("sin_time", "sinusoidalEmbedding", {"positions": times}, sinusoidal(times, 192), dim=192)
frames = torch.arange(0, 180, 12, dtype=torch.int32)
case("sin_frames", "sinusoidalEmbedding", {"positions": frames}, sinusoidal(frames, 32), dim=32)
pos = torch.tensor([0.0, 0.5, 3.25, -7.0, 123.456], dtype=torch.float32)
case("sin_float", "sinusoidalEmbedding", {"positions": pos}, sinusoidal(pos, 10), dim=10)

for name, shape, times in [("rrows_a", (3, 2, 5), 4), ("rrows_b", (2, 7), 3), ("rrows_c", (1, 4, 3), 1)]:
    x = rand(*shape)
    case(name, "repeatRows", {"x": x}, x.repeat_interleave(times, 0), times=times)
for name, shape, times in [("tile_a", (3, 2, 5), 2), ("tile_b", (1, 9), 5)]:
    x = rand(*shape)
    reps = (times,) + (1,) * (len(shape) - 1)
    case(name, "tile", {"x": x}, x.repeat(*reps), times=times)

# maskRows: value 0 is the pipeline's x·mask; another value is masked_fill.
x = rand(2, 7, 5)
mask = (torch.rand(2, 7) < 0.6).to(torch.int32)
case("mask_a", "maskRows", {"x": x, "mask": mask}, x * mask.unsqueeze(-1), value=0.0)
x = rand(3, 4, 2, 3)
mask = torch.tensor([1, 0, 1], dtype=torch.int32)
case("mask_b", "maskRows", {"x": x, "mask": mask}, x.masked_fill(mask.view(3, 1, 1, 1) == 0, -2.5), value=-2.5)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "ops", "layout.safetensors")
os.makedirs(os.path.dirname(out), exist_ok=True)
save_file(tensors, out, meta)
print(f"{out}: {len(meta)} cases, {os.path.getsize(out)} bytes")
