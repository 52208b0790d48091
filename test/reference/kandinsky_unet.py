"""PyTorch reference of the Kandinsky U-Net family, written from our spec.

Covers the Kandinsky 3.0 text-to-image U-Net, the Kandinsky Video 1.0 keyframe
U-Net (temporal blocks) and the interpolation U-Net (temporal convs inside the
Blocks over the groups axis), plus the paper's other keyframe variants that
/work/shared/design/kandinsky-video-spec.md section 6 defines (PROPOSED there).
Module tree, state-dict keys and constructor arguments follow the upstream code
(KandinskyVideo `video_kandinsky3/model/unet.py`), so an upstream checkpoint
loads with `load_state_dict` unchanged; the code itself is ours.

Layouts: a video batch is `(B*T, C, H, W)` with the frames of one video
contiguous (row = b*T + t); the interpolation model uses the same layout with
its G temporal groups in place of frames. Every per-row input (time, context,
context_mask, temporal_embed, skip_frames) has B*T rows.

The parameters are created with upstream's initialisation, including its
zero-initialised layers, so a fresh model behaves like upstream's. The parity
cases (make_unet_cases.py) overwrite every parameter with non-zero values.
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

TEMPORAL_TYPES = (
    'conv1d_attn1d_blocks',  # released keyframe model: temporal blocks, 1-D conv and attention
    'conv3d_attn1d_blocks',  # temporal blocks whose two middle convs are 3x3x3
    'conv1d_attn3d_blocks',  # temporal blocks whose attention also sees the 3x3 spatial neighbourhood
    'conv1d_attn1d_layers',  # temporal layers mixed into the spatial Blocks and AttentionBlocks
)


class Skip(nn.Module):
    """Placeholder for an absent sub-module: keeps list indices (and so key names) in place."""

    def forward(self, x, *args, **kwargs):
        return x


def frames_to_video(x, frames):
    """(B*T, C, H, W) -> (B, C, T, H, W)."""
    rows, c, h, w = x.shape
    if rows % frames:
        raise ValueError(f'{rows} rows do not split into videos of {frames} frames')
    return x.reshape(rows // frames, frames, c, h, w).permute(0, 2, 1, 3, 4)


def video_to_frames(x):
    """(B, C, T, H, W) -> (B*T, C, H, W)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class SinusoidalPosEmb(nn.Module):
    """[sin(p*f), cos(p*f)] with f_j = exp(-j*ln(10000)/(dim/2 - 1)), sin half first."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, positions, dtype=torch.float32):
        half = self.dim // 2
        step = math.log(10000) / (half - 1)
        freqs = torch.exp(torch.arange(half, dtype=dtype, device=positions.device) * -step)
        angles = positions.to(dtype)[:, None] * freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class EmbeddingMLP(nn.Sequential):
    """SinusoidalPosEmb -> Linear `.1` -> SiLU -> Linear `.3` (to_time_embed and its siblings)."""

    def __init__(self, sin_dim, embed_dim):
        super().__init__(SinusoidalPosEmb(sin_dim), nn.Linear(sin_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))

    def forward(self, positions):
        emb = self[0](positions, self[1].weight.dtype)
        return self[3](self[2](self[1](emb)))


class ConditionalGroupNorm(nn.Module):
    """GroupNorm without affine, then `x*(scale+1) + shift` from Linear(SiLU(cond)) (key `context_mlp.1`)."""

    def __init__(self, groups, channels, cond_dim):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, affine=False, eps=1e-5)
        self.context_mlp = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * channels))
        nn.init.zeros_(self.context_mlp[1].weight)
        nn.init.zeros_(self.context_mlp[1].bias)

    def forward(self, x, cond):
        scale, shift = self.context_mlp(cond).chunk(2, dim=1)
        shape = scale.shape + (1,) * (x.dim() - 2)
        return self.norm(x) * (scale.reshape(shape) + 1.0) + shift.reshape(shape)


def _multi_head(t, heads):
    """(N, n, heads*d) -> (N, heads, n, d)."""
    n_rows, n, width = t.shape
    return t.reshape(n_rows, n, heads, width // heads).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head attention without biases; keys/values from `context`, masked keys get -FLT_MAX."""

    def __init__(self, in_channels, out_channels, context_dim, head_dim=64):
        super().__init__()
        if out_channels % head_dim:
            raise ValueError(f'out_channels {out_channels} is not a multiple of head_dim {head_dim}')
        self.num_heads = out_channels // head_dim
        self.scale = head_dim ** -0.5
        self.to_query = nn.Linear(in_channels, out_channels, bias=False)
        self.to_key = nn.Linear(context_dim, out_channels, bias=False)
        self.to_value = nn.Linear(context_dim, out_channels, bias=False)
        self.output_layer = nn.Linear(out_channels, out_channels, bias=False)

    def forward(self, x, context, context_mask=None):
        q = _multi_head(self.to_query(x), self.num_heads)
        k = _multi_head(self.to_key(context), self.num_heads)
        v = _multi_head(self.to_value(context), self.num_heads)
        logits = torch.matmul(q, k.transpose(-1, -2)) * self.scale
        if context_mask is not None:
            logits = logits.masked_fill(~context_mask[:, None, None, :], -torch.finfo(logits.dtype).max)
        out = torch.matmul(logits.softmax(dim=-1), v)
        out = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.output_layer(out)


class TemporalAttention(nn.Module):
    """Self-attention across frames, separately for every pixel and head (same keys as Attention).

    `forward` is the released 1-D form: input (B, T, n, C), a query at (t, p)
    sees (t', p) for every t'. `forward_3d` is spec section 6's Attn3d
    (PROPOSED): a query at (t, y, x) sees every frame t' at the 3x3
    neighbourhood (y+-1, x+-1); neighbours outside the frame are left out
    (not zero-padded), so a query has T*9 keys inside, T*6 on an edge, T*4 in a corner.
    """

    def __init__(self, in_channels, out_channels, head_dim=64):
        super().__init__()
        if out_channels % head_dim:
            raise ValueError(f'out_channels {out_channels} is not a multiple of head_dim {head_dim}')
        self.num_heads = out_channels // head_dim
        self.head_dim = head_dim
        self.scale = head_dim ** -0.5
        self.to_query = nn.Linear(in_channels, out_channels, bias=False)
        self.to_key = nn.Linear(in_channels, out_channels, bias=False)
        self.to_value = nn.Linear(in_channels, out_channels, bias=False)
        self.output_layer = nn.Linear(out_channels, out_channels, bias=False)
        nn.init.zeros_(self.output_layer.weight)

    def _split(self, t):
        # (B, T, n, heads*d) -> (B, n, heads, T, d)
        b, frames, n, _ = t.shape
        return t.reshape(b, frames, n, self.num_heads, self.head_dim).permute(0, 2, 3, 1, 4)

    def forward(self, x):
        b, frames, n, _ = x.shape
        q, k, v = self._split(self.to_query(x)), self._split(self.to_key(x)), self._split(self.to_value(x))
        weights = (torch.matmul(q, k.transpose(-1, -2)) * self.scale).softmax(dim=-1)
        out = torch.matmul(weights, v)  # (B, n, heads, T, d)
        out = out.permute(0, 3, 1, 2, 4).reshape(b, frames, n, -1)
        return self.output_layer(out)

    def forward_3d(self, x, height, width):
        b, frames, n, _ = x.shape
        heads, d = self.num_heads, self.head_dim

        def grid(t):  # (B, T, H*W, heads*d) -> (B, T, H, W, heads, d)
            return t.reshape(b, frames, height, width, heads, d)

        q = grid(self.to_query(x))
        k = grid(self.to_key(x))
        v = grid(self.to_value(x))
        # the 9 shifted copies of k and v: entry s = (dy+1)*3 + (dx+1) holds position (y+dy, x+dx)
        kp = F.pad(k, (0, 0, 0, 0, 1, 1, 1, 1))  # pads W then H by one on each side
        vp = F.pad(v, (0, 0, 0, 0, 1, 1, 1, 1))
        shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        ks = torch.stack([kp[:, :, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width] for dy, dx in shifts], dim=2)
        vs = torch.stack([vp[:, :, 1 + dy:1 + dy + height, 1 + dx:1 + dx + width] for dy, dx in shifts], dim=2)
        # ks, vs: (B, T', 9, H, W, heads, d)
        logits = torch.einsum('btyxhd,bsnyxhd->byxhtsn', q, ks) * self.scale  # (B, H, W, heads, T, T', 9)
        ys = torch.arange(height, device=x.device)
        xs = torch.arange(width, device=x.device)
        inside = torch.stack([
            ((ys + dy >= 0) & (ys + dy < height))[:, None] & ((xs + dx >= 0) & (xs + dx < width))[None, :]
            for dy, dx in shifts
        ], dim=-1)  # (H, W, 9)
        logits = logits.masked_fill(~inside[None, :, :, None, None, None, :], float('-inf'))
        weights = logits.reshape(b, height, width, heads, frames, frames * 9).softmax(dim=-1)
        weights = weights.reshape(b, height, width, heads, frames, frames, 9)
        out = torch.einsum('byxhtsn,bsnyxhd->btyxhd', weights, vs)
        return self.output_layer(out.reshape(b, frames, n, heads * d))


def _feed_forward(channels, expansion_ratio):
    hidden = expansion_ratio * channels
    return nn.Sequential(
        nn.Conv2d(channels, hidden, kernel_size=1, bias=False),
        nn.SiLU(),
        nn.Conv2d(hidden, channels, kernel_size=1, bias=False),
    )


def _to_frame_sequences(x, frames):
    """(B*T, C, H, W) -> (B, T, H*W, C)."""
    rows, c, h, w = x.shape
    return x.reshape(rows // frames, frames, c, h * w).transpose(2, 3)


def _from_frame_sequences(x, h, w):
    """(B, T, H*W, C) -> (B*T, C, H, W)."""
    b, frames, n, c = x.shape
    return x.transpose(2, 3).reshape(b * frames, c, h, w)


class Block(nn.Module):
    """ConditionalGroupNorm -> SiLU -> [up_sample] -> projection -> [temporal conv + merge] -> [down_sample].

    up_resolution: True = ConvTranspose2d k2 s2 before the projection, False =
    Conv2d k2 s2 after it, None = neither. `temporal` adds `temporal_projection`
    (Conv3d (3,1,1) over the groups/frames axis) and the scalar `temporal_merge`;
    it runs when forward gets `num_temporal_groups`.
    """

    def __init__(self, in_channels, out_channels, time_embed_dim, kernel_size=3, norm_groups=32, up_resolution=None,
                 temporal=False):
        super().__init__()
        self.group_norm = ConditionalGroupNorm(norm_groups, in_channels, time_embed_dim)
        self.activation = nn.SiLU()
        self.up_sample = nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2) \
            if up_resolution is True else Skip()
        self.projection = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, padding=0 if kernel_size == 1 else 1)
        self.down_sample = nn.Conv2d(out_channels, out_channels, kernel_size=2, stride=2) \
            if up_resolution is False else Skip()
        if temporal:
            self.temporal_merge = nn.Parameter(torch.zeros(1))
            self.temporal_projection = nn.Conv3d(out_channels, out_channels, (3, 1, 1), padding=(1, 0, 0))
            nn.init.zeros_(self.temporal_projection.weight)
            nn.init.zeros_(self.temporal_projection.bias)

    def forward(self, x, time_embed, num_temporal_groups=None):
        x = self.activation(self.group_norm(x, time_embed))
        x = self.projection(self.up_sample(x))
        if num_temporal_groups is not None:
            y = video_to_frames(self.temporal_projection(frames_to_video(x, num_temporal_groups)))
            m = self.temporal_merge
            x = (1 - m) * x + m * y
        return self.down_sample(x)


class ResNetBlock(nn.Module):
    """Four Blocks (1x1, 3x3, 3x3, 1x1; hidden = max(in, out) // compression) plus a shortcut."""

    def __init__(self, in_channels, out_channels, time_embed_dim, norm_groups=32, compression_ratio=2,
                 up_resolutions=None, temporal=False):
        super().__init__()
        hidden = max(in_channels, out_channels) // compression_ratio
        channels = [(in_channels, hidden), (hidden, hidden), (hidden, hidden), (hidden, out_channels)]
        if up_resolutions is None:
            up_resolutions = [None] * 4
        self.resnet_blocks = nn.ModuleList([
            Block(a, b, time_embed_dim, k, norm_groups, up, temporal)
            for (a, b), k, up in zip(channels, (1, 3, 3, 1), up_resolutions)
        ])
        upsamples = any(u is True for u in up_resolutions)
        downsamples = any(u is False for u in up_resolutions)
        self.shortcut_up_sample = nn.ConvTranspose2d(in_channels, in_channels, kernel_size=2, stride=2) \
            if upsamples else Skip()
        self.shortcut_projection = nn.Conv2d(in_channels, out_channels, kernel_size=1) \
            if in_channels != out_channels else Skip()
        self.shortcut_down_sample = nn.Conv2d(out_channels, out_channels, kernel_size=2, stride=2) \
            if downsamples else Skip()

    def forward(self, x, time_embed, num_temporal_groups=None):
        out = x
        for block in self.resnet_blocks:
            out = block(out, time_embed, num_temporal_groups)
        x = self.shortcut_down_sample(self.shortcut_projection(self.shortcut_up_sample(x)))
        return x + out


class TemporalResNetBlock(nn.Module):
    """Four stages [ConditionalGroupNorm on the time embedding `.0`, SiLU, Conv3d `.2`] over frames, residual.

    Kernels (1, 3, 3, 1) along time. conv3d=True (spec section 6, PROPOSED):
    the two middle convs are 3x3x3 with padding 1 and the outer ones 1x1x1.
    """

    def __init__(self, num_channels, time_embed_dim, num_frames, norm_groups=32, compression_ratio=2, conv3d=False):
        super().__init__()
        self.num_frames = num_frames
        hidden = num_channels // compression_ratio
        channels = [(num_channels, hidden), (hidden, hidden), (hidden, hidden), (hidden, num_channels)]
        stages = []
        for (a, b), k in zip(channels, (1, 3, 3, 1)):
            if k == 1:
                kernel, padding = (1, 1, 1), (0, 0, 0)
            elif conv3d:
                kernel, padding = (3, 3, 3), (1, 1, 1)
            else:
                kernel, padding = (3, 1, 1), (1, 0, 0)
            stages.append(nn.ModuleList([
                ConditionalGroupNorm(norm_groups, a, time_embed_dim),
                nn.SiLU(),
                nn.Conv3d(a, b, kernel, padding=padding),
            ]))
        self.temporal_resnet_blocks = nn.ModuleList(stages)
        nn.init.zeros_(self.temporal_resnet_blocks[-1][2].weight)
        nn.init.zeros_(self.temporal_resnet_blocks[-1][2].bias)

    def forward(self, x, time_embed):
        out = x
        for norm, activation, conv in self.temporal_resnet_blocks:
            out = activation(norm(out, time_embed))
            out = video_to_frames(conv(frames_to_video(out, self.num_frames)))
        return x + out


class AttentionPolling(nn.Module):
    """time_embed += Attention(query = mean of the context over all L tokens, keys/values = context, mask)."""

    def __init__(self, num_channels, context_dim, head_dim=64):
        super().__init__()
        self.attention = Attention(context_dim, num_channels, context_dim, head_dim)

    def forward(self, x, context, context_mask=None):
        pooled = self.attention(context.mean(dim=1, keepdim=True), context, context_mask)
        return x + pooled[:, 0]


class AttentionBlock(nn.Module):
    """in_norm -> attention (cross with the mask, or self when context_dim is None) -> residual;
    [temporal layers variant: temporal_norm -> temporal_attention -> residual];
    out_norm -> feed_forward -> residual.

    `num_frames` (spec section 6 "Layers", PROPOSED) adds `temporal_norm`
    (ConditionalGroupNorm on the temporal embedding) and `temporal_attention`.
    """

    def __init__(self, num_channels, time_embed_dim, context_dim=None, norm_groups=32, head_dim=64, expansion_ratio=4,
                 num_frames=None):
        super().__init__()
        self.in_norm = ConditionalGroupNorm(norm_groups, num_channels, time_embed_dim)
        self.attention = Attention(num_channels, num_channels, context_dim or num_channels, head_dim)
        self.num_frames = num_frames
        if num_frames is not None:
            self.temporal_norm = ConditionalGroupNorm(norm_groups, num_channels, time_embed_dim)
            self.temporal_attention = TemporalAttention(num_channels, num_channels, head_dim)
        self.out_norm = ConditionalGroupNorm(norm_groups, num_channels, time_embed_dim)
        self.feed_forward = _feed_forward(num_channels, expansion_ratio)

    def forward(self, x, time_embed, context=None, context_mask=None, temporal_embed=None):
        rows, c, h, w = x.shape
        out = self.in_norm(x, time_embed).reshape(rows, c, h * w).transpose(1, 2)
        if context is None:
            out = self.attention(out, out)
        else:
            out = self.attention(out, context, context_mask)
        x = x + out.transpose(1, 2).reshape(rows, c, h, w)
        if self.num_frames is not None:
            out = _to_frame_sequences(self.temporal_norm(x, temporal_embed), self.num_frames)
            x = x + _from_frame_sequences(self.temporal_attention(out), h, w)
        return x + self.feed_forward(self.out_norm(x, time_embed))


class TemporalAttentionBlock(nn.Module):
    """in_norm on the TEMPORAL embedding -> TemporalAttention across frames -> residual;
    out_norm on the time embedding -> feed_forward -> residual.
    attn3d=True: spec section 6 Attn3d (PROPOSED), see TemporalAttention.forward_3d."""

    def __init__(self, num_channels, time_embed_dim, num_frames, norm_groups=32, head_dim=64, expansion_ratio=4,
                 attn3d=False):
        super().__init__()
        self.num_frames = num_frames
        self.attn3d = attn3d
        self.in_norm = ConditionalGroupNorm(norm_groups, num_channels, time_embed_dim)
        self.temporal_attention = TemporalAttention(num_channels, num_channels, head_dim)
        self.out_norm = ConditionalGroupNorm(norm_groups, num_channels, time_embed_dim)
        self.feed_forward = _feed_forward(num_channels, expansion_ratio)

    def forward(self, x, time_embed, temporal_embed):
        h, w = x.shape[-2:]
        out = _to_frame_sequences(self.in_norm(x, temporal_embed), self.num_frames)
        out = self.temporal_attention.forward_3d(out, h, w) if self.attn3d else self.temporal_attention(out)
        x = x + _from_frame_sequences(out, h, w)
        return x + self.feed_forward(self.out_norm(x, time_embed))


def _variant_flags(num_frames, temporal_type):
    """(temporal blocks?, temporal layers?, conv3d?, attn3d?) for a level."""
    if temporal_type not in TEMPORAL_TYPES:
        raise ValueError(f'temporal_type {temporal_type!r} is not one of {TEMPORAL_TYPES}')
    if num_frames is None:
        return False, False, False, False
    layers = temporal_type == 'conv1d_attn1d_layers'
    return not layers, layers, temporal_type == 'conv3d_attn1d_blocks', temporal_type == 'conv1d_attn3d_blocks'


class DownSampleBlock(nn.Module):
    """self_attention_block -> temporal_attention_block -> for each j: `.0` -> `.3` -> `.1` -> `.2` -> `.4`."""

    def __init__(self, in_channels, out_channels, time_embed_dim, context_dim=None, num_blocks=3, groups=32,
                 head_dim=64, expansion_ratio=4, compression_ratio=2, down_sample=True, self_attention=True,
                 num_frames=None, interpolation=False, temporal_type='conv1d_attn1d_blocks'):
        super().__init__()
        blocks, layers, conv3d, attn3d = _variant_flags(num_frames, temporal_type)
        layer_frames = num_frames if layers else None
        temporal_convs = interpolation or layers
        self.self_attention_block = AttentionBlock(
            in_channels, time_embed_dim, None, groups, head_dim, expansion_ratio, layer_frames
        ) if self_attention else Skip()
        self.temporal_attention_block = TemporalAttentionBlock(
            in_channels, time_embed_dim, num_frames, groups, head_dim, expansion_ratio, attn3d
        ) if blocks and self_attention else Skip()
        last_up = [None, None, False if down_sample else None, None]
        pairs = []
        for j in range(num_blocks):
            a = in_channels if j == 0 else out_channels
            b = out_channels
            pairs.append(nn.ModuleList([
                ResNetBlock(a, b, time_embed_dim, groups, compression_ratio, None, temporal_convs),
                AttentionBlock(b, time_embed_dim, context_dim, groups, head_dim, expansion_ratio, layer_frames)
                if context_dim is not None else Skip(),
                ResNetBlock(b, b, time_embed_dim, groups, compression_ratio,
                            last_up if j == num_blocks - 1 else None, temporal_convs),
                TemporalResNetBlock(b, time_embed_dim, num_frames, groups, compression_ratio, conv3d) if blocks else Skip(),
                TemporalResNetBlock(b, time_embed_dim, num_frames, groups, compression_ratio, conv3d) if blocks else Skip(),
            ]))
        self.resnet_attn_blocks = nn.ModuleList(pairs)

    def forward(self, x, time_embed, context=None, context_mask=None, temporal_embed=None, num_temporal_groups=None):
        x = self.self_attention_block(x, time_embed, temporal_embed=temporal_embed)
        x = self.temporal_attention_block(x, time_embed, temporal_embed)
        for resnet_in, attention, resnet_out, temporal_in, temporal_out in self.resnet_attn_blocks:
            x = resnet_in(x, time_embed, num_temporal_groups)
            x = temporal_in(x, time_embed)
            x = attention(x, time_embed, context, context_mask, temporal_embed)
            x = resnet_out(x, time_embed, num_temporal_groups)
            x = temporal_out(x, time_embed)
        return x


class UpSampleBlock(nn.Module):
    """for each j: `.3` -> `.0` -> `.1` -> `.4` -> `.2`; then temporal_attention_block, then self_attention_block.

    Pairs (a -> b): (in+cat -> in), (in -> in) x (n-2), (in -> out); `.0`
    ResNetBlock(a -> a) (the first one up-samples in its Block 1), `.1`
    AttentionBlock(a), `.2` ResNetBlock(a -> b), `.3`/`.4` TemporalResNetBlock(a).
    """

    def __init__(self, in_channels, cat_dim, out_channels, time_embed_dim, context_dim=None, num_blocks=3, groups=32,
                 head_dim=64, expansion_ratio=4, compression_ratio=2, up_sample=True, self_attention=True,
                 num_frames=None, interpolation=False, temporal_type='conv1d_attn1d_blocks'):
        super().__init__()
        blocks, layers, conv3d, attn3d = _variant_flags(num_frames, temporal_type)
        layer_frames = num_frames if layers else None
        temporal_convs = interpolation or layers
        channel_pairs = [(in_channels + cat_dim, in_channels)] + [(in_channels, in_channels)] * (num_blocks - 2) \
            + [(in_channels, out_channels)]
        ups = [[None, True if up_sample else None, None, None]] + [None] * (num_blocks - 1)
        pairs = []
        for (a, b), up in zip(channel_pairs, ups):  # zip: as upstream, the shorter list decides the count
            pairs.append(nn.ModuleList([
                ResNetBlock(a, a, time_embed_dim, groups, compression_ratio, up, temporal_convs),
                AttentionBlock(a, time_embed_dim, context_dim, groups, head_dim, expansion_ratio, layer_frames)
                if context_dim is not None else Skip(),
                ResNetBlock(a, b, time_embed_dim, groups, compression_ratio, None, temporal_convs),
                TemporalResNetBlock(a, time_embed_dim, num_frames, groups, compression_ratio, conv3d) if blocks else Skip(),
                TemporalResNetBlock(a, time_embed_dim, num_frames, groups, compression_ratio, conv3d) if blocks else Skip(),
            ]))
        self.resnet_attn_blocks = nn.ModuleList(pairs)
        self.temporal_attention_block = TemporalAttentionBlock(
            out_channels, time_embed_dim, num_frames, groups, head_dim, expansion_ratio, attn3d
        ) if blocks and self_attention else Skip()
        self.self_attention_block = AttentionBlock(
            out_channels, time_embed_dim, None, groups, head_dim, expansion_ratio, layer_frames
        ) if self_attention else Skip()

    def forward(self, x, time_embed, context=None, context_mask=None, temporal_embed=None, num_temporal_groups=None):
        for resnet_in, attention, resnet_out, temporal_in, temporal_out in self.resnet_attn_blocks:
            x = temporal_in(x, time_embed)
            x = resnet_in(x, time_embed, num_temporal_groups)
            x = attention(x, time_embed, context, context_mask, temporal_embed)
            x = temporal_out(x, time_embed)
            x = resnet_out(x, time_embed, num_temporal_groups)
        x = self.temporal_attention_block(x, time_embed, temporal_embed)
        return self.self_attention_block(x, time_embed, temporal_embed=temporal_embed)


class UNet(nn.Module):
    """The Kandinsky U-Net. Constructor arguments and defaults as upstream, plus `temporal_type` (ours)."""

    def __init__(self,
                 model_channels,
                 init_channels=None,
                 num_channels=3,
                 out_channels=3,
                 time_embed_dim=None,
                 context_dim=None,
                 groups=32,
                 head_dim=64,
                 expansion_ratio=4,
                 compression_ratio=2,
                 dim_mult=(1, 2, 4, 8),
                 num_blocks=(3, 3, 3, 3),
                 add_cross_attention=(False, True, True, True),
                 add_self_attention=(False, True, True, True),
                 num_frames=None,
                 interpolation=False,
                 temporal_type='conv1d_attn1d_blocks'):
        super().__init__()
        if interpolation:
            num_frames = None  # as upstream: the interpolation model has no temporal blocks
        self.num_frames = num_frames
        self.interpolation = interpolation
        self.temporal_type = temporal_type
        _, layers, _, _ = _variant_flags(num_frames, temporal_type)
        self.temporal_layers = layers
        init_channels = init_channels or model_channels

        self.to_time_embed = EmbeddingMLP(init_channels, time_embed_dim)
        if context_dim is not None:
            self.feature_pooling = AttentionPolling(time_embed_dim, context_dim, head_dim)
        if num_frames is not None:
            self.to_temporal_embed = EmbeddingMLP(init_channels, time_embed_dim)
        if interpolation:
            self.perturbation_to_time_embed = EmbeddingMLP(init_channels, time_embed_dim)
            self.time_embed_merge = nn.Parameter(torch.zeros(1))
            self.skip_merge = nn.Parameter(torch.zeros(1))
            self.skip_embeddings = nn.Embedding(20, time_embed_dim)

        self.in_layer = nn.Conv2d(num_channels, init_channels, kernel_size=3, padding=1)

        hidden = [init_channels] + [model_channels * m for m in dim_mult]
        levels = list(zip(hidden[:-1], hidden[1:]))
        self.num_levels = len(levels)
        text_dims = [context_dim if cross else None for cross in add_cross_attention]
        common = dict(num_frames=num_frames, interpolation=interpolation, temporal_type=temporal_type)

        self.down_samples = nn.ModuleList()
        cat_dims = []
        for level, ((a, b), n, text_dim, self_attn) in enumerate(zip(levels, num_blocks, text_dims, add_self_attention)):
            last = level == self.num_levels - 1
            cat_dims.append(0 if last else b)
            self.down_samples.append(DownSampleBlock(
                a, b, time_embed_dim, text_dim, n, groups, head_dim, expansion_ratio, compression_ratio,
                down_sample=not last, self_attention=self_attn, **common))

        self.up_samples = nn.ModuleList()
        reversed_params = zip(reversed(levels), reversed(list(num_blocks)), reversed(text_dims),
                              reversed(list(add_self_attention)))
        for level, ((b, a), n, text_dim, self_attn) in enumerate(reversed_params):
            self.up_samples.append(UpSampleBlock(
                a, cat_dims.pop(), b, time_embed_dim, text_dim, n, groups, head_dim, expansion_ratio,
                compression_ratio, up_sample=level != 0, self_attention=self_attn, **common))

        self.out_layer = nn.Sequential(
            nn.GroupNorm(groups, init_channels),
            nn.SiLU(),
            nn.Conv2d(init_channels, out_channels, kernel_size=3, padding=1),
        )

    def forward(self, x, time, context=None, context_mask=None, temporal_embed=None, skip_frames=None,
                num_temporal_groups=None):
        """x (N, num_channels, H, W); time (N,) int; context (N, L, context_dim); context_mask (N, L) bool;
        temporal_embed (N,) int frame positions (keyframe model); skip_frames (N,) int and
        num_temporal_groups G (interpolation model; N = B*G). Parameter order as upstream."""
        time_embed = self.to_time_embed(time)
        if context is not None:
            time_embed = self.feature_pooling(time_embed, context, context_mask)

        x = self.in_layer(x)
        if self.num_frames is not None:
            if temporal_embed is None:
                raise ValueError('the keyframe model needs temporal_embed (frame positions)')
            temporal_embed = self.to_temporal_embed(temporal_embed)
        if num_temporal_groups is not None:
            if not self.interpolation:
                raise ValueError('num_temporal_groups is for the interpolation model only')
            zeros = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            perturbation = self.perturbation_to_time_embed(zeros)
            m = self.time_embed_merge
            time_embed = m * perturbation + (1 - m) * time_embed
            time_embed = time_embed + self.skip_merge * self.skip_embeddings(skip_frames)
        # temporal convs inside the Blocks: over the groups (interpolation) or the frames (layers variant)
        block_groups = self.num_frames if self.temporal_layers else num_temporal_groups

        skips = []
        for level, down in enumerate(self.down_samples):
            x = down(x, time_embed, context, context_mask, temporal_embed, block_groups)
            if level != self.num_levels - 1:
                skips.append(x)
        for level, up in enumerate(self.up_samples):
            if level != 0:
                x = torch.cat([x, skips.pop()], dim=1)
            x = up(x, time_embed, context, context_mask, temporal_embed, block_groups)
        return self.out_layer(x)


# Real configurations (spec section 4).
REAL_BASE = dict(
    model_channels=384, init_channels=192, time_embed_dim=1536, context_dim=4096, groups=32, head_dim=64,
    expansion_ratio=4, compression_ratio=2, dim_mult=(1, 2, 4, 8), num_blocks=(3, 3, 3, 3),
    add_cross_attention=(False, True, True, True), add_self_attention=(False, True, True, True),
)
REAL_CONFIGS = {
    'keyframe (Kandinsky Video 1.0)': dict(REAL_BASE, num_channels=4, out_channels=4, num_frames=15),
    'interpolation (Kandinsky Video 1.0)': dict(REAL_BASE, num_channels=20, out_channels=12, interpolation=True),
    'text-to-image (Kandinsky 3.0)': dict(REAL_BASE, num_channels=4, out_channels=4),
}


def count_parameters(config):
    """(parameter count, tensor count) of UNet(**config), built without initialising (nor touching) the memory."""
    patched = [nn.Linear, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.GroupNorm, nn.Embedding, nn.LayerNorm]
    saved = {cls: cls.reset_parameters for cls in patched}
    saved_zeros = nn.init.zeros_
    try:
        for cls in patched:
            cls.reset_parameters = lambda self: None
        nn.init.zeros_ = lambda t: t
        model = UNet(**config)
        params = list(model.parameters())
        return sum(p.numel() for p in params), len(params)
    finally:
        for cls, fn in saved.items():
            cls.reset_parameters = fn
        nn.init.zeros_ = saved_zeros
