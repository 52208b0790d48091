"""Fixtures for the norm kernels (test/fixtures/ops/norm.safetensors).

Run with Debian's /usr/bin/python3 (torch 1.13). Inputs are f32; references
are computed in f64 and rounded to f32, so a test measures our error against
the exact result rather than against torch's own f32 rounding.
"""
import json
import os

import torch
import torch.nn.functional as F

from st import save_file

torch.manual_seed(0)
tensors = {}
meta = {}


def rand(*shape, scale=1.0, offset=0.0):
    return (torch.randn(*shape) * scale + offset).float()


def add(name, params, args, out):
    meta[name] = json.dumps(params)
    for k, v in args.items():
        tensors[f"{name}.{k}"] = v
    tensors[f"{name}.out"] = out.float()


def group_norm_case(name, shape, groups, eps, affine=False, scale_shift_rows=None, silu=False, offset=0.0):
    c = shape[1]
    x = rand(*shape, scale=2.0, offset=offset)
    args = {"x": x}
    w = b = None
    if affine:
        w, b = rand(c, scale=0.5, offset=1.0), rand(c, scale=0.5)
        args.update(weight=w, bias=b)
    y = F.group_norm(x.double(), groups, None if w is None else w.double(), None if b is None else b.double(), eps)
    if scale_shift_rows is not None:
        ss = rand(scale_shift_rows, 2 * c, scale=0.5)
        args["scaleShift"] = ss
        scale, shift = ss.double().view(scale_shift_rows, 2 * c, *([1] * (len(shape) - 2))).chunk(2, dim=1)
        y = y * (scale + 1) + shift
    if silu:
        y = F.silu(y)
    add(name, {"groups": groups, "eps": eps, "silu": silu}, args, y)


def spatial_norm_case(name, shape, zq_hw, groups, eps, zq_rows=None, silu=False):
    n, c, h, w = shape
    x = rand(*shape, scale=2.0, offset=0.5)
    zq_y = rand(zq_rows or n, c, *zq_hw, offset=1.0)
    zq_b = rand(zq_rows or n, c, *zq_hw)
    weight, bias = rand(c, scale=0.5, offset=1.0), rand(c, scale=0.5)
    y = F.group_norm(x.double(), groups, weight.double(), bias.double(), eps)
    # Upsampled in f32: nearest only copies values, and torch's f64 kernel
    # rounds its source indices differently from the f32 one the models run.
    up = lambda t: F.interpolate(t, size=(h, w), mode="nearest").double()  # noqa: E731
    y = y * up(zq_y) + up(zq_b)
    if silu:
        y = F.silu(y)
    add(name, {"groups": groups, "eps": eps, "silu": silu}, {"x": x, "zqY": zq_y, "zqB": zq_b, "weight": weight, "bias": bias}, y)


def layer_norm_case(name, shape, eps, offset=0.0):
    d = shape[-1]
    x = rand(*shape, scale=2.0, offset=offset)
    w, b = rand(d, scale=0.5, offset=1.0), rand(d, scale=0.5)
    y = F.layer_norm(x.double(), (d,), w.double(), b.double(), eps)
    add(name, {"eps": eps}, {"x": x, "weight": w, "bias": b}, y)


def rms_norm_case(name, shape, eps):
    d = shape[-1]
    x = rand(*shape, scale=2.0, offset=0.3)
    w = rand(d, scale=0.5, offset=1.0)
    xd = x.double()
    # T5LayerNorm: x / sqrt(mean(x²) + eps) · w
    y = xd * torch.rsqrt(xd.pow(2).mean(-1, keepdim=True) + eps) * w.double()
    add(name, {"eps": eps}, {"x": x, "weight": w}, y)


# Group sizes (channels/groups × spatial) of 105, 2244, 891, ... are not
# multiples of the 64-wide workgroup. Cases whose spatial size (row length for
# the row norms) is a multiple of 4, and for spatial norm also the width, take
# the kernels' vec4 path, the others the scalar one; both are covered.
group_norm_case("gn_affine", [2, 12, 5, 7], groups=4, eps=1e-5, affine=True)
group_norm_case("gn_plain", [3, 8, 33, 17], groups=2, eps=1e-6)
group_norm_case("gn_ss_sample", [2, 16, 9, 11], groups=4, eps=1e-5, scale_shift_rows=2)
group_norm_case("gn_ss_bcast_silu", [3, 8, 6, 6], groups=4, eps=1e-5, scale_shift_rows=1, silu=True)
group_norm_case("gn_affine_silu", [1, 64, 20, 13], groups=32, eps=1e-5, affine=True, silu=True)
group_norm_case("gn_video5d", [2, 8, 3, 4, 5], groups=2, eps=1e-5, affine=True, scale_shift_rows=2, silu=True)
group_norm_case("gn_nospatial", [5, 12], groups=3, eps=1e-6, affine=True)
# |mean| >> std: an f32 E[x²] − E[x]² would keep about two digits of the variance.
group_norm_case("gn_offset", [2, 8, 16, 16], groups=4, eps=1e-6, offset=300.0)

spatial_norm_case("sn_up2", [2, 8, 8, 10], (4, 5), groups=4, eps=1e-6)
spatial_norm_case("sn_up4_silu", [1, 32, 12, 16], (3, 4), groups=32, eps=1e-6, silu=True)
spatial_norm_case("sn_equal", [2, 16, 7, 9], (7, 9), groups=4, eps=1e-6)
spatial_norm_case("sn_bcast_up4", [3, 8, 8, 8], (2, 2), groups=2, eps=1e-6, zq_rows=1, silu=True)
spatial_norm_case("sn_up3", [1, 8, 9, 12], (3, 4), groups=4, eps=1e-6)
# Not integer ratios. torch's nearest is floor(i·fl(h/H)), which for 2 → 82
# rows differs from floor(i·h/H) at row 41.
spatial_norm_case("sn_frac", [2, 8, 7, 8], (5, 3), groups=4, eps=1e-6)
spatial_norm_case("sn_torch_nearest", [1, 4, 82, 8], (2, 4), groups=2, eps=1e-6)

layer_norm_case("ln_small", [5, 301], eps=1e-5)
layer_norm_case("ln_3d", [2, 3, 1000], eps=1e-6, offset=50.0)
layer_norm_case("ln_4096", [3, 4096], eps=1e-5)
rms_norm_case("rms_small", [4, 520], eps=1e-6)
rms_norm_case("rms_tiny", [3, 7], eps=1e-6)
rms_norm_case("rms_4096", [2, 3, 4096], eps=1e-6)

out = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "fixtures", "ops", "norm.safetensors"))
os.makedirs(os.path.dirname(out), exist_ok=True)
save_file(tensors, out, metadata=meta)
print(f"wrote {out}: {len(meta)} cases, {os.path.getsize(out)} bytes")
