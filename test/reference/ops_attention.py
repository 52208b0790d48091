"""Fixtures for kernels/attention.wgsl: test/fixtures/ops/attention.safetensors.

Run with Debian's /usr/bin/python3 (python3-torch). Each case stores its
inputs, '<case>.out', and its scalar parameters as JSON metadata. References
are computed in float64 from the float32 inputs, following upstream:
Kandinsky's Attention (masked keys filled with -FLT_MAX before the softmax),
TemporalAttention across frames, the PROPOSED 3-D neighbourhood variant
(spec section 6) and Hugging Face T5 (unscaled scores, relative-position bias
plus finfo(float32).min on padding keys).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from st import save_file  # noqa: E402

FLT_MAX = torch.finfo(torch.float32).max
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ops", "attention.safetensors")

gen = torch.Generator().manual_seed(0)


def rand(*shape, scale=1.0):
    return (torch.rand(*shape, generator=gen) * 2 - 1) * scale


def heads_first(x, heads):
    """[B, L, H*D] -> [B, H, L, D]"""
    b, l, c = x.shape
    return x.reshape(b, l, heads, c // heads).transpose(1, 2)


def merge_heads(x):
    """[B, H, L, D] -> [B, L, H*D]"""
    b, h, l, d = x.shape
    return x.transpose(1, 2).reshape(b, l, h * d)


def sdpa(q, k, v, scale, keep=None, bias=None):
    """q [..., Lq, D], k/v [..., Lk, D]; keep broadcastable to the scores (True = attend)."""
    s = torch.einsum("...id,...jd->...ij", q, k) * scale
    if bias is not None:
        s = s + bias
    if keep is not None:
        s = s.masked_fill(~keep, -FLT_MAX)
    return torch.softmax(s, dim=-1) @ v


cases = {}
meta = {}


def add(name, params, **tensors):
    meta[name] = json.dumps(params)
    for k, t in tensors.items():
        cases[f"{name}.{k}"] = t


def attention_case(name, b, bkv, lq, lk, heads, d, scale=None, mask=None):
    c = heads * d
    q, k, v = rand(b, lq, c), rand(bkv, lk, c), rand(bkv, lk, c)
    scale = d ** -0.5 if scale is None else scale
    qh, kh, vh = (heads_first(x.double(), heads) for x in (q, k, v))
    rep = b // bkv
    kh, vh = kh.repeat_interleave(rep, 0), vh.repeat_interleave(rep, 0)
    keep = None
    if mask is not None:
        keep = mask.bool().repeat_interleave(rep, 0)[:, None, None, :]
    out = merge_heads(sdpa(qh, kh, vh, scale, keep)).float()
    tensors = dict(q=q, k=k, v=v, out=out)
    if mask is not None:
        tensors["mask"] = mask.int()
    add(name, {"op": "attention", "heads": heads, "scale": scale}, **tensors)


def temporal_case(name, videos, frames, height, width, heads, d, neighbourhood):
    pixels, c = height * width, heads * d
    q, k, v = (rand(videos * frames, pixels, c) for _ in range(3))
    # [B*T, P, C] -> [B, P, H, T, D]: attention over the frames of each pixel.
    def per_pixel(x):
        return x.double().reshape(videos, frames, pixels, heads, d).permute(0, 2, 3, 1, 4)

    qh, kh, vh = per_pixel(q), per_pixel(k), per_pixel(v)
    scale = d ** -0.5
    if neighbourhood:
        # Keys of pixel p: every frame of the in-frame pixels p' with |dy|, |dx| <= 1.
        ys, xs = torch.arange(pixels) // width, torch.arange(pixels) % width
        near = ((ys[:, None] - ys[None, :]).abs() <= 1) & ((xs[:, None] - xs[None, :]).abs() <= 1)  # [P, P']
        kall = kh.permute(0, 2, 1, 3, 4).reshape(videos, 1, heads, pixels * frames, d)  # keys (p', t')
        vall = vh.permute(0, 2, 1, 3, 4).reshape(videos, 1, heads, pixels * frames, d)
        s = torch.einsum("bphtd,bxhkd->bphtk", qh, kall) * scale  # [B, P, H, T, P'*T']
        keep = near.repeat_interleave(frames, 1)[None, :, None, None, :]
        s = s.masked_fill(~keep, float("-inf"))
        o = torch.softmax(s, -1) @ vall.squeeze(1)[:, None]
    else:
        o = sdpa(qh, kh, vh, scale)
    out = o.permute(0, 3, 1, 2, 4).reshape(videos * frames, pixels, c).float()
    op = "temporalAttention3d" if neighbourhood else "temporalAttention"
    add(name, {"op": op, "heads": heads, "frames": frames, "height": height, "width": width}, q=q, k=k, v=v, out=out)


def t5_case(name, b, l, heads, d, lengths):
    c = heads * d
    # T5 scores are unscaled (the scale is folded into its weights): smaller inputs keep them O(1).
    q, k, v = rand(b, l, c, scale=0.25), rand(b, l, c, scale=0.25), rand(b, l, c)
    bias = rand(heads, l, l, scale=2.0)
    mask = (torch.arange(l)[None, :] < torch.tensor(lengths)[:, None]).int()
    qh, kh, vh = (heads_first(x.double(), heads) for x in (q, k, v))
    # Hugging Face: position_bias + (1 - mask) * finfo.min, added to the scores.
    ext = (1.0 - mask.double())[:, None, None, :] * torch.finfo(torch.float32).min
    out = merge_heads(sdpa(qh, kh, vh, 1.0, bias=bias.double()[None] + ext)).float()
    add(name, {"op": "attention", "heads": heads, "scale": 1.0}, q=q, k=k, v=v, mask=mask, bias=bias, out=out)


# Self-attention (lengths not multiples of any tile).
attention_case("self_d8", b=2, bkv=2, lq=37, lk=37, heads=2, d=8)
attention_case("self_d64", b=1, bkv=1, lq=19, lk=19, heads=2, d=64)
attention_case("self_d32", b=1, bkv=1, lq=11, lk=11, heads=3, d=32)
# Cross-attention to text tokens with masked keys; batch 2 of the first has
# every key masked (torch then averages all values); the second shares one
# context between two query rows each.
m = (torch.rand(3, 13, generator=gen) > 0.3).int()
m[1, 0] = 1
m[2] = 0
attention_case("cross_d8", b=3, bkv=3, lq=21, lk=13, heads=2, d=8, mask=m)
m = (torch.rand(2, 5, generator=gen) > 0.4).int()
m[:, 0] = 1
attention_case("cross_d64", b=4, bkv=2, lq=9, lk=5, heads=1, d=64, mask=m)
# Temporal attention across frames at each pixel, and the 3-D neighbourhood variant.
temporal_case("temporal_d8", videos=2, frames=5, height=2, width=3, heads=2, d=8, neighbourhood=False)
temporal_case("temporal_d64", videos=1, frames=7, height=1, width=3, heads=1, d=64, neighbourhood=False)
temporal_case("temporal3d_d8", videos=2, frames=3, height=3, width=4, heads=2, d=8, neighbourhood=True)
temporal_case("temporal3d_d64", videos=1, frames=2, height=2, width=3, heads=1, d=64, neighbourhood=True)
# T5 self-attention: unscaled, relative-position bias per head, padding keys masked.
t5_case("t5_d32", b=2, l=17, heads=3, d=32, lengths=[17, 10])
t5_case("t5_d256", b=2, l=9, heads=2, d=256, lengths=[6, 9])

os.makedirs(os.path.dirname(OUT), exist_ok=True)
save_file(cases, OUT, metadata=meta)
print(f"wrote {len(meta)} cases, {os.path.getsize(OUT)} bytes to {os.path.relpath(OUT)}")
