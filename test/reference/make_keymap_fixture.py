"""Writes test/fixtures/keymap/kandinsky3-diffusers-keys.json: the upstream key names of a Kandinsky 3
U-Net and image MoVQ with the real structure (4 levels, 3 blocks per level; narrow channels so they
build quickly), each paired with the key diffusers gives it. This is a second, independent
statement of the mapping that weights/keymaps/kandinsky3-diffusers.json encodes as a table:
  - U-Net: the renaming rules of diffusers' scripts/convert_kandinsky3_unet.py (substring
    replacements, then resnet_attn_blocks.j.{0,1,2} -> resnets_in.j / attentions.(j+1) /
    resnets_out.j), restated here;
  - MoVQ: the structure of diffusers' VQModel (Encoder/Decoder with spatial norm), written out
    module by module: up blocks in reverse order, mid.block_(i+1) -> mid_block.resnets.i,
    attention 1x1 convs -> Linear (shape [O, I]), encoder GroupNorms without the norm_layer level.
Run with Debian's python:  /usr/bin/python3 test/reference/make_keymap_fixture.py
"""
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import kandinsky_movq as km  # noqa: E402
import kandinsky_unet as ku  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "keymap", "kandinsky3-diffusers-keys.json")

UNET_CONFIG = dict(model_channels=32, init_channels=16, num_channels=4, out_channels=4, time_embed_dim=32,
                   context_dim=24, groups=4, head_dim=8, dim_mult=(1, 2, 4, 8), num_blocks=(3, 3, 3, 3),
                   add_cross_attention=(False, True, True, True), add_self_attention=(False, True, True, True))
MOVQ_CONFIG = dict(ch=32, ch_mult=[1, 2, 2, 4], num_res_blocks=2, attn_resolutions=[4], z_channels=4,
                   resolution=32, in_channels=3, out_ch=3, double_z=False, dropout=0.0)

UNET_RENAMES = [("to_time_embed.1", "time_embedding.linear_1"), ("to_time_embed.3", "time_embedding.linear_2"),
                ("in_layer", "conv_in"), ("out_layer.0", "conv_norm_out"), ("out_layer.2", "conv_out"),
                ("down_samples", "down_blocks"), ("up_samples", "up_blocks"), ("feature_pooling", "add_time_condition"),
                ("to_query", "to_q"), ("to_key", "to_k"), ("to_value", "to_v"), ("output_layer", "to_out.0"),
                ("self_attention_block", "attentions.0")]


def unet_key(key):
    for old, new in UNET_RENAMES:
        key = key.replace(old, new)
    m = re.search(r"resnet_attn_blocks\.(\d+)\.([012])\.", key)
    if m:
        j, part = int(m.group(1)), m.group(2)
        new = {"0": f"resnets_in.{j}.", "1": f"attentions.{j + 1}.", "2": f"resnets_out.{j}."}[part]
        key = key[:m.start()] + new + key[m.end():]
    return key


def movq_key(key, levels):
    """Upstream MoVQ key -> (diffusers key, reshaped to a matrix?)."""
    parts = key.split(".")
    side = parts[0]
    if side in ("quant_conv", "post_quant_conv"):
        return key, False
    rest = parts[1:]
    if rest[0] == "down":
        head = ["down_blocks", rest[1]]
        kind, tail = rest[2], rest[3:]
        if kind == "downsample":
            return ".".join([side, *head, "downsamplers", "0", *tail]), False
    elif rest[0] == "up":
        head = ["up_blocks", str(levels - 1 - int(rest[1]))]
        kind, tail = rest[2], rest[3:]
        if kind == "upsample":
            return ".".join([side, *head, "upsamplers", "0", *tail]), False
    elif rest[0] == "mid":
        m = re.fullmatch(r"(block|attn)_(\d+)", rest[1])
        head = ["mid_block"]
        kind, tail = m.group(1), [str(int(m.group(2)) - 1), *rest[2:]]
    else:  # conv_in, conv_out, norm_out
        name = {"norm_out": "conv_norm_out"}.get(rest[0], rest[0])
        tail = rest[1:]
        if side == "encoder" and tail[0] == "norm_layer":
            tail = tail[1:]
        return ".".join([side, name, *tail]), False
    index, leaf = tail[0], tail[1:]
    if kind == "block":
        if leaf[0] == "nin_shortcut":
            leaf = ["conv_shortcut", *leaf[1:]]
        elif side == "encoder" and leaf[0] in ("norm1", "norm2"):
            leaf = [leaf[0], *leaf[2:]]  # plain GroupNorm in the diffusers encoder
        return ".".join([side, *head, "resnets", index, *leaf]), False
    # attention
    if leaf[0] == "norm":
        norm = ["group_norm", *leaf[2:]] if side == "encoder" else ["spatial_norm", *leaf[1:]]
        return ".".join([side, *head, "attentions", index, *norm]), False
    name = {"q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[leaf[0]]
    return ".".join([side, *head, "attentions", index, name, *leaf[1:]]), leaf[1] == "weight"


def main():
    unet = ku.UNet(**UNET_CONFIG)
    movq = km.MoVQ(MOVQ_CONFIG)
    levels = len(MOVQ_CONFIG["ch_mult"])
    out = {
        "source": "test/reference/make_keymap_fixture.py",
        "unet_config": UNET_CONFIG,
        "movq_config": MOVQ_CONFIG,
        "unet": [[k, unet_key(k)] for k in unet.state_dict()],
        "movq": [[k, *movq_key(k, levels)] for k in movq.state_dict()],
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"{OUT}: {len(out['unet'])} U-Net and {len(out['movq'])} MoVQ keys")


if __name__ == "__main__":
    main()
