"""Fixtures for conv3d on videos kept as (b·t, C, H, W) (test/fixtures/ops/conv3d.safetensors).

Run with Debian's /usr/bin/python3 (torch 1.13). x is stored as the models
keep it, [B·T, C, H, W]; the reference reshapes it to torch's (B, C, T, H, W),
runs F.conv3d in f64 (zero padding: frames outside each video are zeros) and
stores the result back as [B·T, O, H, W], rounded to f32.
"""
import json
import os

import torch
import torch.nn.functional as F

from st import save_file

torch.manual_seed(0)
tensors = {}
meta = {}


def conv3d_case(name, b, t, c, h, w, o, kernel, f16=False):
    padding = [(k - 1) // 2 for k in kernel]
    x = torch.randn(b * t, c, h, w).float()
    weight = torch.randn(o, c, *kernel).float() / (c * kernel[0] * kernel[1] * kernel[2]) ** 0.5
    if f16:
        weight = weight.half()
    bias = torch.randn(o).float()
    video = x.double().view(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    y = F.conv3d(video, weight.double(), bias.double(), padding=padding)
    y = y.permute(0, 2, 1, 3, 4).reshape(b * t, o, h, w)
    meta[name] = json.dumps({"frames": t, "padding": padding, "f16": f16})
    tensors[f"{name}.x"] = x
    tensors[f"{name}.weight"] = weight
    tensors[f"{name}.bias"] = bias
    tensors[f"{name}.out"] = y.float()


# Temporal (k,1,1) convs: the U-Net's TemporalResNetBlock (k = 3 and 1) and
# MoVQ's; full (3,3,3): MoVQ's temporal projections. B > 1: videos are independent.
conv3d_case("t3", 2, 5, 6, 4, 5, 7, (3, 1, 1))
conv3d_case("t3_f16", 1, 6, 8, 4, 4, 9, (3, 1, 1), f16=True)
conv3d_case("t1", 1, 4, 9, 3, 6, 5, (1, 1, 1))
conv3d_case("t5", 1, 6, 3, 2, 3, 4, (5, 1, 1))
conv3d_case("f3", 2, 3, 4, 5, 6, 5, (3, 3, 3))
conv3d_case("f3_f16", 1, 4, 6, 4, 4, 8, (3, 3, 3), f16=True)

out = os.path.join(os.path.dirname(__file__), "..", "fixtures", "ops", "conv3d.safetensors")
save_file(tensors, out, meta)
print(f"wrote {os.path.normpath(out)}: {len(meta)} cases, {os.path.getsize(out)} bytes")
