"""Writes the U-Net parity cases under test/fixtures/parity/ (format: shared/design/parity-cases.md).

Run with Debian's python (apt package python3-torch), from the repository root:

    /usr/bin/python3 test/reference/make_unet_cases.py            # write the cases, print checks and real-config counts
    /usr/bin/python3 test/reference/make_unet_cases.py --counts   # only print the real-config parameter counts

Every case is a tiny model (spec section 8) whose parameters ALL get non-zero
random values, upstream's zero-initialised layers and merge scalars included.
A parameter's values depend only on its key and shape (the generator is seeded
from the key), so the variant cases share every common weight with
unet_keyframe_blocks and see the same inputs: their output differences come
from the variant paths alone. Weights and inputs are stored in f32; the
forward runs in float64 on exactly those f32 values and the result is cast to f32.
"""
import json
import math
import os
import re
import sys
import zlib
from collections import OrderedDict

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kandinsky_unet import REAL_CONFIGS, UNet, count_parameters  # noqa: E402
from st import save_file  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
OUT_DIR = os.path.join(ROOT, 'test', 'fixtures', 'parity')
ATOL, RTOL = 1e-4, 1e-3
WEIGHT_SEED = 20240501

# spec section 8, shrunk to keep each case folder under ~1.5 MB: model_channels 16 -> 8,
# time_embed_dim 32 -> 16 (the conditional norms' Linear(ted, 2C) held half the weights), and
# head_dim 8 -> 4 so that every attention, temporal ones included, still has 2 or more heads.
TINY = OrderedDict(
    model_channels=8, init_channels=8, num_channels=4, out_channels=4, time_embed_dim=16, context_dim=24,
    groups=4, head_dim=4, expansion_ratio=4, compression_ratio=2, dim_mult=[1, 2], num_blocks=[2, 2],
    add_cross_attention=[False, True], add_self_attention=[False, True], num_frames=4, interpolation=False,
)


# ---------------------------------------------------------------- weights

def _fan_in(name, shape):
    if name.endswith('up_sample.weight'):  # ConvTranspose2d k2 s2 (in, out, 2, 2): each output pixel sees `in` taps
        return shape[0]
    return shape[1] * math.prod(shape[2:])


def parameter_value(name, shape):
    """Non-zero values for one parameter, a function of its key and shape only."""
    gen = torch.Generator().manual_seed(WEIGHT_SEED ^ zlib.crc32(name.encode()))
    leaf = name.rsplit('.', 1)[-1]
    if leaf in ('temporal_merge', 'time_embed_merge', 'skip_merge'):
        return 0.25 + 0.5 * torch.rand(shape, generator=gen)  # both merged branches count
    noise = torch.randn(shape, generator=gen)
    if name == 'skip_embeddings.weight':
        return 0.5 * noise
    if name.startswith('out_layer.0.') or name.startswith('t5.1.'):  # affine GroupNorm / LayerNorm
        return 1.0 + 0.2 * noise if leaf == 'weight' else 0.1 * noise
    if leaf == 'bias':
        return 0.1 * noise
    if '.context_mlp.' in name:  # conditional norm: scale + 1 stays in ~[0.5, 1.5]
        return noise * (0.5 / math.sqrt(_fan_in(name, shape)))
    return noise / math.sqrt(_fan_in(name, shape))


def initialise(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(parameter_value(name, tuple(p.shape)))
            assert torch.all(p != 0), name
    return module


# ---------------------------------------------------------------- inputs

def _mask(rows_lengths, length):
    """Boolean (rows, L) mask; row r attends its first rows_lengths[r] tokens."""
    return torch.stack([torch.arange(length) < n for n in rows_lengths])


def keyframe_inputs(gen, videos, frames, size, times, lengths, context_len):
    rows = videos * frames
    x = torch.randn(rows, 4, *size, generator=gen)
    # the pipeline repeats one prompt's context over the frames of a video
    ctx = torch.randn(videos, context_len, TINY['context_dim'], generator=gen).repeat_interleave(frames, dim=0)
    positions = torch.arange(0, 180, 180 // frames)  # spec: arange(0, 180, 180 // T)
    return OrderedDict(
        x=x,
        time=torch.tensor(times, dtype=torch.long).repeat_interleave(frames),
        context=ctx,
        context_mask=_mask(lengths, context_len).repeat_interleave(frames, dim=0),
        temporal_embed=positions.repeat(videos),
    )


# ---------------------------------------------------------------- cases

def cases():
    kf_gen = lambda: torch.Generator().manual_seed(101)  # noqa: E731  the four keyframe variants share inputs
    keyframe = lambda: keyframe_inputs(kf_gen(), 1, 4, (8, 8), [620], [5], 6)  # noqa: E731  one padding token, as the pipeline

    yield 'unet_keyframe_blocks', dict(TINY), {}, keyframe(), 'released keyframe model (conv1d_attn1d_blocks), 1 video of 4 frames'
    for variant in ('conv3d_attn1d_blocks', 'conv1d_attn3d_blocks', 'conv1d_attn1d_layers'):
        yield f'unet_{variant}', dict(TINY, temporal_type=variant), {}, keyframe(), \
            f'keyframe variant {variant} (spec section 6, PROPOSED), same weights/inputs as unet_keyframe_blocks where keys agree'

    gen = torch.Generator().manual_seed(202)
    yield 'unet_keyframe_batch2', dict(TINY), {}, \
        keyframe_inputs(gen, 2, 4, (8, 8), [980, 340], [3, 7], 7), \
        'keyframe model, 2 videos x 4 frames batched (8 rows), different times, video 0 attends 3 of 7 tokens, video 1 all 7'

    gen = torch.Generator().manual_seed(303)
    groups, videos = 3, 2
    rows = videos * groups
    cfg = dict(TINY, num_channels=20, out_channels=12, num_frames=None, interpolation=True)
    inputs = OrderedDict(
        x=torch.randn(rows, 20, 8, 8, generator=gen),
        time=torch.tensor([900] * groups + [260] * groups, dtype=torch.long),
        context=torch.randn(rows, 5, TINY['context_dim'], generator=gen),
        context_mask=_mask([4] * groups + [1] * groups, 5),
        skip_frames=torch.tensor([3] * groups + [1] * groups, dtype=torch.long),
    )
    yield 'unet_interpolation', cfg, {'num_temporal_groups': groups}, inputs, \
        'interpolation model, 2 videos x 3 temporal groups (6 rows), skip_frames 3 and 1'

    gen = torch.Generator().manual_seed(404)
    cfg = dict(TINY, num_frames=None)
    inputs = OrderedDict(
        x=torch.randn(2, 4, 8, 16, generator=gen),
        time=torch.tensor([740, 60], dtype=torch.long),
        context=torch.randn(2, 6, TINY['context_dim'], generator=gen),
        context_mask=_mask([6, 2], 6),
    )
    yield 'unet_text_to_image', cfg, {}, inputs, 'text-to-image U-Net (Kandinsky 3.0 layout), 2 images 8x16'

    gen = torch.Generator().manual_seed(505)
    cfg = dict(TINY, dim_mult=[1, 2, 2], num_blocks=[2, 3, 2],
               add_cross_attention=[False, True, False], add_self_attention=[True, False, True])
    yield 'unet_attention_per_level', cfg, {}, keyframe_inputs(gen, 1, 4, (8, 8), [480], [4], 6), \
        'keyframe model, 3 levels: cross attention (F,T,F), self attention (T,F,T), num_blocks (2,3,2)'


def projections_state(context_dim):
    proj = nn.ModuleDict({'t5': nn.Sequential(nn.Linear(context_dim, context_dim, bias=False), nn.LayerNorm(context_dim))})
    return initialise(proj).state_dict()


def run_f64(model, inputs, args):
    model64 = model.double()
    kwargs = {k: (v.double() if v.is_floating_point() else v) for k, v in inputs.items()}
    with torch.no_grad():
        out = model64(**kwargs, **args)
    model.float()
    return out.float()


def run_f32(model, inputs, args):
    with torch.no_grad():
        return model(**inputs, **args)


def write_case(name, config, args, inputs, source, sd_extra=None):
    folder = os.path.join(OUT_DIR, name)
    os.makedirs(folder, exist_ok=True)
    model = initialise(UNet(**config)).eval()
    out = run_f64(model, inputs, args)
    out32 = run_f32(model, inputs, args)
    state = model.state_dict()

    case = OrderedDict(
        name=name,
        module='unet',
        config=config,
        method='forward',
        args=args,
        atol=ATOL,
        rtol=RTOL,
        source=f'test/reference/make_unet_cases.py with test/reference/kandinsky_unet.py (PyTorch {torch.__version__}); '
               f'{source}; every parameter non-zero random (seeded by key); forward in float64 on the stored f32 '
               f'weights and inputs, output cast to f32',
    )
    text = json.dumps(case, indent=2)
    text = re.sub(r'\[\s+([^\[\]{}]*?)\s+\]', lambda m: '[' + ', '.join(v.strip() for v in m.group(1).split(',')) + ']', text)
    with open(os.path.join(folder, 'case.json'), 'w') as f:
        f.write(text + '\n')
    save_file(OrderedDict((k, v) for k, v in state.items()), os.path.join(folder, 'weights.safetensors'))
    save_file(inputs, os.path.join(folder, 'inputs.safetensors'))
    save_file({'out': out}, os.path.join(folder, 'outputs.safetensors'))

    if sd_extra is not None:
        ckpt = {'unet': state, 'projections': sd_extra['projections'], 'null_embedding': sd_extra['null_embedding']}
        torch.save(ckpt, os.path.join(folder, 'checkpoint.pt'))
        flat = OrderedDict()
        for k, v in state.items():
            flat[f'unet.{k}'] = v
        for k, v in sd_extra['projections'].items():
            flat[f'projections.{k}'] = v
        flat['null_embedding'] = sd_extra['null_embedding']
        save_file(flat, os.path.join(folder, 'checkpoint.safetensors'))

    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    bound = ATOL + RTOL * out.abs().max().item()
    err32 = (out32 - out).abs().max().item()
    n_params = sum(p.numel() for p in model.parameters())
    print(f'{name:28s} out {tuple(out.shape)} std {out.std().item():.3f} max|out| {out.abs().max().item():.3f}  '
          f'params {n_params}  f32-run err/bound {err32 / bound:.3f}  {size / 1e6:.2f} MB')
    assert torch.isfinite(out).all()
    assert err32 <= bound, f'{name}: the f32 PyTorch run itself misses the tolerance'
    return out


def print_real_counts():
    print('Real configurations (spec section 4), parameter counts:')
    for label, cfg in REAL_CONFIGS.items():
        n, tensors = count_parameters(cfg)
        print(f'  {label:36s} {n:>14,d} parameters in {tensors} tensors')


def main():
    torch.set_num_threads(1)  # reproducible reductions
    if '--counts' in sys.argv[1:]:
        print_real_counts()
        return
    os.makedirs(OUT_DIR, exist_ok=True)
    outs = {}
    for name, config, args, inputs, source in cases():
        extra = None
        if name == 'unet_keyframe_blocks':
            extra = {
                'projections': projections_state(config['context_dim']),
                'null_embedding': torch.randn(config['context_dim'], generator=torch.Generator().manual_seed(7)),
            }
        outs[name] = write_case(name, config, args, inputs, source, extra)

    base = outs['unet_keyframe_blocks']
    for variant in ('conv3d_attn1d_blocks', 'conv1d_attn3d_blocks', 'conv1d_attn1d_layers'):
        other = outs[f'unet_{variant}']
        rel = ((other - base).abs().max() / base.abs().max()).item()
        print(f'{variant:28s} max|out - keyframe_blocks| / max|keyframe_blocks| = {rel:.3f}')
        assert rel > 0.05, f'{variant} barely differs from the default: is its path exercised?'
    print_real_counts()


if __name__ == '__main__':
    main()
