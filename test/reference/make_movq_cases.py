"""Writes the MoVQ parity cases under test/fixtures/parity/ (format: ../shared/design/parity-cases.md).

Run with Debian's python:  /usr/bin/python3 test/reference/make_movq_cases.py

Tiny MoVQ of spec section 8. Weights are drawn in f32 (kandinsky_movq.init_params, fixed seed per
case, every parameter non-zero), the call is computed in float64 from exactly those f32 weights and
f32 inputs, the result stored as f32. The script also prints, per video case, how far it is from the
plain (image) decode and how much each reproduced upstream quirk moves the output, so a case that
does not exercise its option would be noticed.
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, HERE)
import kandinsky_movq as km  # noqa: E402
from st import save_file  # noqa: E402

OUT_DIR = os.path.join(HERE, "..", "fixtures", "parity")
ATOL, RTOL = 1e-4, 1e-3

# upstream generator_params (the released keys), tiny sizes of spec section 8
TINY = {
    "double_z": False,
    "z_channels": 4,
    "resolution": 16,
    "in_channels": 3,
    "out_ch": 3,
    "ch": 32,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attn_resolutions": [8],
    "dropout": 0.0,
}
# the temporal decoder options, all spelled out (upstream MOVQDecoder defaults)
VIDEO_DEFAULTS = {
    "temporal": False,
    "temporal_mid_blocks": True,
    "temporal_kernel_size": [3, 3, 3],
    "temporal_conv_padding": [1, 1, 1],
    "temporal_blocks": False,
    "temporal_attention_block": False,
    "build_3D_decoder": False,
    "flicker_augmentation": False,
}


def write_case(name, module, config, method, args, weights, inputs, outputs, source, checkpoint=None):
    d = os.path.join(OUT_DIR, name)
    os.makedirs(d, exist_ok=True)
    case = {"name": name, "module": module, "config": config, "method": method, "args": args,
            "atol": ATOL, "rtol": RTOL, "source": source}
    with open(os.path.join(d, "case.json"), "w") as f:
        f.write(json.dumps(case, indent=2) + "\n")
    save_file({k: v.half() for k, v in weights.items()}, os.path.join(d, "weights.safetensors"))
    save_file(inputs, os.path.join(d, "inputs.safetensors"))
    save_file(outputs, os.path.join(d, "outputs.safetensors"))
    if checkpoint is not None:
        torch.save(type(checkpoint)((k, v.half()) for k, v in checkpoint.items()), os.path.join(d, "checkpoint.pt"))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {size / 1e6:.2f} MB")
    return d


def randn(gen, *shape):
    return torch.randn(*shape, generator=gen, dtype=torch.float32)


def build(config, seed):
    """The f32 model with its deterministic weights, and the same weights as an f64 model."""
    m32 = km.init_params(km.MoVQ(config), seed).eval()
    # Weights are stored as F16 in the cases (the format allows it) to keep the folders small:
    # round them once, so the f64 reference runs on exactly the values the files hold.
    with torch.no_grad():
        for p in m32.parameters():
            p.copy_(p.half().float())
    m64 = km.MoVQ(config).double().eval()
    m64.load_state_dict({k: v.double() for k, v in m32.state_dict().items()})
    return m32, m64


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def plain_decode(config, state_dict, quant):
    """The image decoder (no temporal option) with the variant's shared weights; for
    build_3D_decoder the 3x3x3 conv kernels are cut to their centre frame (so it differs only by
    the temporal mixing)."""
    base = {k: v for k, v in config.items() if k not in VIDEO_DEFAULTS}
    m = km.MoVQ(base).double().eval()
    own = m.state_dict()
    sd = {}
    for k, v in state_dict.items():
        if k in own:
            sd[k] = v[:, :, 1] if v.dim() == 5 and own[k].dim() == 4 else v
    m.load_state_dict({k: v.double() for k, v in sd.items()})
    return m.decode(quant)


def quirk_effects(m64, quant):
    """How much the output moves when quirk 1 / quirk 2 are switched off (so they are exercised)."""
    ref = m64.decode(quant)
    out = {}
    orig_attn = km.AttnBlock.forward
    km.AttnBlock.forward = lambda self, x, zq=None, zq_from_frame0=False: orig_attn(self, x, zq, False)
    try:
        out["quirk1_off"] = rel(m64.decode(quant), ref)
    finally:
        km.AttnBlock.forward = orig_attn
    if m64.decoder.temporal_attention_block:
        orig_t = km.TemporalAttnBlock.forward
        zq_holder = {}

        def with_zq(self, x, num_frames):
            saved = self.norm.forward
            self.norm.forward = lambda h, zq=None: saved(h, zq_holder["zq"])
            try:
                return orig_t(self, x, num_frames)
            finally:
                del self.norm.forward

        km.TemporalAttnBlock.forward = with_zq
        zq_holder["zq"] = quant
        try:
            out["quirk2_off"] = rel(m64.decode(quant), ref)
        finally:
            km.TemporalAttnBlock.forward = orig_t
    return out


def main():
    torch.set_num_threads(1)  # bit-stable float64 reductions
    os.makedirs(OUT_DIR, exist_ok=True)
    src = ("test/reference/make_movq_cases.py (kandinsky_movq.py, written from the spec; when written it "
           "matched upstream movq.py bit for bit in float64 wherever upstream runs); float64 compute "
           "from the f32 weights and inputs")

    # ---- image MoVQ (1.0): decode and encode share one set of weights
    img_seed = 1000
    m32, m64 = build(TINY, img_seed)
    sd = m32.state_dict()
    g = torch.Generator().manual_seed(1)
    # two frames (the 1.0 pipeline decodes several frames per call, each with its own zq);
    # non-square latent 8x12 -> 16x24 pixels
    quant = randn(g, 2, 4, 8, 12)
    out = m64.decode(quant.double()).float()
    write_case("movq_image_decode", "movq", TINY, "decode", {}, sd, {"quant": quant}, {"out": out},
               src + "; image MoVQ of 1.0, batch of 2 independent frames", checkpoint=sd)
    # encode: 32x48 input, so the real size at level 1 (16x24) differs from the nominal 8 that
    # places the attention (attention must be there anyway)
    x = torch.rand(2, 3, 32, 48, generator=g, dtype=torch.float32) * 2 - 1
    enc = m64.encode(x.double()).float()
    write_case("movq_image_encode", "movq", TINY, "encode", {}, sd, {"x": x}, {"out": enc},
               src + "; encoder + quant_conv, no quantisation; 32x48 input (attention placed by the "
               "nominal resolution)")

    # ---- temporal decoders: the whole batch is one video
    video_cases = [
        ("movq_temporal_layers", dict(temporal=True, temporal_attention_block=True, temporal_mid_blocks=True),
         2000, (5, 4, 8, 8),
         "released video MoVQ options: temporal layers (3x3x3 Conv3d + merges, mid blocks included) and "
         "TemporalAttnBlocks; one video of 5 frames; upstream quirks 1 and 2 reproduced"),
        ("movq_temporal_blocks_attention", dict(temporal_blocks=True, temporal_attention_block=True),
         3000, (4, 4, 8, 10),
         "TemporalResnetBlocks + TemporalAttnBlocks, no temporal layers; one video of 4 frames, "
         "non-square latent; upstream quirks 1 and 2 reproduced"),
        ("movq_3d_decoder", dict(build_3D_decoder=True),
         4000, (4, 4, 8, 10),
         "build_3D_decoder, spec's PROPOSED definition (ResnetBlock conv1/conv2 Conv3d 3x3x3 pad 1 "
         "over the whole video; upstream's option does not run); one video of 4 frames, non-square "
         "latent; quirk 1 reproduced"),
    ]
    for name, opts, seed, shape, what in video_cases:
        cfg = {**TINY, **VIDEO_DEFAULTS, **opts}
        m32, m64 = build(cfg, seed)
        sd = m32.state_dict()
        g = torch.Generator().manual_seed(seed + 1)
        quant = randn(g, *shape)
        ref = m64.decode(quant.double())
        write_case(name, "movq", cfg, "decode", {}, sd, {"quant": quant}, {"out": ref.float()},
                   src + "; " + what)
        diff = {"vs_plain_decode": rel(plain_decode(cfg, sd, quant.double()), ref)}
        diff.update(quirk_effects(m64, quant.double()))
        print("   relative max change: " + ", ".join(f"{k} {v:.3f}" for k, v in diff.items())
              + f"; max|out| {ref.abs().max().item():.3f}")
        assert all(v > 0.05 for v in diff.values()), f"{name}: an option is not exercised: {diff}"


if __name__ == "__main__":
    main()
