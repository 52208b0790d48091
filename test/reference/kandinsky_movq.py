"""MoVQ reference (Kandinsky 3 / Kandinsky Video): image encoder/decoder and the temporal video decoder.

Written from ../shared/design/kandinsky-video-spec.md section 5 (upstream for orientation:
KandinskyVideo branch kandinsky_video_1_0 `video_kandinsky3/movq.py`, the image MoVQ of 1.0, and
branch main `kandinsky_video/movq.py`, the temporal `MOVQDecoder`). Module and parameter names equal
upstream's, so `state_dict()` holds exactly the keys of upstream's `movq.pt` / `video_movq.pt`.

Key facts worth knowing when porting (all verified against the upstream code):
- Every norm is a `SpatialNorm` wrapper, so its GroupNorm lives under `.norm_layer`:
  `encoder.down.0.block.0.norm1.norm_layer.weight`, `encoder.norm_out.norm_layer.bias`, ... In the
  encoder (no zq) there are no `conv_y`/`conv_b`; in the decoder every SpatialNorm has them
  (`add_conv` false: no `.conv`). GroupNorm: 32 groups, eps 1e-6, affine.
- There is no quantizer module: upstream `MoVQ` holds encoder, quant_conv, post_quant_conv, decoder
  only and its checkpoints are loaded with strict `load_state_dict`, so there are no
  `quantize.*` keys (no `quantize.embedding.weight`); `embed_dim` / `n_embed` are not read.
- `encode(x)` = encoder + quant_conv, no quantisation (upstream `MoVQ.encode`). It needs
  `double_z: false` (upstream's Encoder default is true, which would give 2·z channels that
  quant_conv (z → z) cannot take; the released configs say false).
- `decode(quant)`: `post_quant_conv` on the latent, the decoder conditioned on `zq = quant` (the
  un-post-quant latent) in every SpatialNorm.
- No ResnetBlock has `temb_proj` (temb_channels is 0 in both Encoder and Decoder).
- Attention is placed by the **nominal** resolution (`resolution` halved per level), never the
  input's real size.

Temporal decoder (any of temporal / temporal_blocks / temporal_attention_block / build_3D_decoder
true): `decode` treats the whole batch as ONE video of T = batch frames (upstream
`num_frames = quant.shape[0]`). Upstream quirks reproduced on purpose (spec section 5):
  1. the spatial AttnBlock normalises every frame with frame 0's zq;
  2. TemporalAttnBlock uses the plain GroupNorm (its conv_y / conv_b are loaded but unused);
  3. build_3D_decoder (does not run upstream) is the spec's PROPOSED definition: ResnetBlock
     conv1 / conv2 are Conv3d 3x3x3 padding 1 over the whole (1, C, T, H, W) video.
With none of these options the decoder is the 1.0 image decoder: every frame is independent and the
AttnBlock uses each frame's own zq (the 1.0 pipeline decodes several frames per call this way).

Everything is batched here where upstream loops per frame: GroupNorm, 2-D convs, nearest resize and
the spatial attention act per sample, so the loops change nothing except quirk 1.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

TEMPORAL_OPTIONS = ("temporal", "temporal_blocks", "temporal_attention_block", "build_3D_decoder")


def silu(x):
    return x * torch.sigmoid(x)


def to_video(x, t):
    """(b*t, c, h, w) -> (b, c, t, h, w); frames of one video contiguous."""
    bt, c, h, w = x.shape
    assert bt % t == 0, f"batch {bt} is not a multiple of {t} frames"
    return x.reshape(bt // t, t, c, h, w).permute(0, 2, 1, 3, 4)


def from_video(x):
    """(b, c, t, h, w) -> (b*t, c, h, w)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)


class SpatialNorm(nn.Module):
    """GroupNorm(32, C, eps 1e-6); with zq: norm(x) * conv_y(zq') + conv_b(zq'), zq' = zq resized
    (nearest) to x's H x W, optionally through a 3x3 `conv` (add_conv)."""

    def __init__(self, channels, zq_channels=None, add_conv=False):
        super().__init__()
        self.norm_layer = nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)
        self.has_zq = zq_channels is not None
        self.add_conv = bool(add_conv) and self.has_zq
        if self.has_zq:
            if self.add_conv:
                self.conv = nn.Conv2d(zq_channels, zq_channels, 3, 1, 1)
            self.conv_y = nn.Conv2d(zq_channels, channels, 1)
            self.conv_b = nn.Conv2d(zq_channels, channels, 1)

    def forward(self, x, zq=None):
        y = self.norm_layer(x)
        if zq is None:
            return y
        zq = F.interpolate(zq, size=x.shape[-2:], mode="nearest")
        if self.add_conv:
            zq = self.conv(zq)
        return y * self.conv_y(zq) + self.conv_b(zq)


class Upsample(nn.Module):
    def __init__(self, channels, with_conv):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.conv(x) if self.with_conv else x


class Downsample(nn.Module):
    def __init__(self, channels, with_conv):
        super().__init__()
        self.with_conv = with_conv
        if with_conv:
            self.conv = nn.Conv2d(channels, channels, 3, 2, 0)

    def forward(self, x):
        if self.with_conv:
            # zero pad right and bottom by one, then a 3x3 stride-2 conv without padding
            return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))
        return F.avg_pool2d(x, kernel_size=2, stride=2)


class ResnetBlock(nn.Module):
    """norm1 -> SiLU -> conv1 [-> temporal mix 1] -> norm2 -> SiLU -> conv2 [-> temporal mix 2];
    shortcut nin_shortcut (1x1) when channels change; x + h.

    temporal: `h = (1 - m) * h + m * Conv3d(h)` over the video, after conv1 (projection1 / merge1)
    and after conv2 (projection2 / merge2). use_3d_conv (build_3D_decoder, PROPOSED): conv1 / conv2
    are Conv3d 3x3x3 padding 1 applied to the whole video. The norms stay per frame in both cases.
    flicker_augmentation only adds the `temporal_flicker_proj` key (decode never has an aug_emb).
    """

    def __init__(self, in_channels, out_channels=None, zq_ch=None, add_conv=False, temporal=False,
                 temporal_kernel_size=(3, 3, 3), temporal_conv_padding=(1, 1, 1), use_3d_conv=False,
                 flicker_augmentation=False):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_3d_conv = use_3d_conv
        conv = nn.Conv3d if use_3d_conv else nn.Conv2d
        self.norm1 = SpatialNorm(in_channels, zq_ch, add_conv)
        self.conv1 = conv(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = SpatialNorm(out_channels, zq_ch, add_conv)
        self.conv2 = conv(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1)
        self.temporal = temporal
        if temporal:
            ks, pad = tuple(temporal_kernel_size), tuple(temporal_conv_padding)
            # upstream creates merge1 before projection1 (state-dict order only; keys are named)
            self.temporal_merge1 = nn.Parameter(torch.zeros(1))
            self.temporal_projection1 = nn.Conv3d(out_channels, out_channels, ks, padding=pad)
            self.temporal_merge2 = nn.Parameter(torch.zeros(1))
            self.temporal_projection2 = nn.Conv3d(out_channels, out_channels, ks, padding=pad)
            if flicker_augmentation:
                self.temporal_flicker_proj = nn.Linear(1, out_channels)

    def _conv(self, conv, h, num_frames):
        if self.use_3d_conv:
            return from_video(conv(to_video(h, num_frames)))
        return conv(h)

    def _mix(self, h, proj, m, num_frames):
        if not (self.temporal and num_frames):
            return h
        out = from_video(proj(to_video(h, num_frames)))
        return (1 - m) * h + m * out

    def forward(self, x, zq=None, num_frames=None):
        h = self._conv(self.conv1, silu(self.norm1(x, zq)), num_frames)
        if self.temporal:
            h = self._mix(h, self.temporal_projection1, self.temporal_merge1, num_frames)
        h = self._conv(self.conv2, silu(self.norm2(h, zq)), num_frames)  # dropout: eval, none
        if self.temporal:
            h = self._mix(h, self.temporal_projection2, self.temporal_merge2, num_frames)
        if self.in_channels != self.out_channels:
            x = self.nin_shortcut(x)
        return x + h


def _qkv_convs(module, c):
    module.q = nn.Conv2d(c, c, 1)
    module.k = nn.Conv2d(c, c, 1)
    module.v = nn.Conv2d(c, c, 1)
    module.proj_out = nn.Conv2d(c, c, 1)


class AttnBlock(nn.Module):
    """Single-head self-attention over the pixels of each frame, scale C^-1/2; x + proj_out(attn)."""

    def __init__(self, channels, zq_ch=None, add_conv=False):
        super().__init__()
        self.norm = SpatialNorm(channels, zq_ch, add_conv)
        _qkv_convs(self, channels)

    def forward(self, x, zq=None, zq_from_frame0=False):
        if zq is not None and zq_from_frame0:
            # QUIRK 1 (temporal decoder, upstream main movq.py): AttnBlock loops over frames and hands
            # the WHOLE zq to SpatialNorm, whose own per-sample loop then takes entry 0 for the single
            # frame it gets - so every frame is normalised with frame 0's latent.
            zq = zq[:1].expand(x.shape[0], *zq.shape[1:])
        h = self.norm(x, zq)
        q, k, v = self.q(h), self.k(h), self.v(h)
        b, c, hh, ww = q.shape
        q = q.reshape(b, c, hh * ww).permute(0, 2, 1)  # b, n, c
        k = k.reshape(b, c, hh * ww)  # b, c, n
        w = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)  # b, n_q, n_k
        out = torch.bmm(v.reshape(b, c, hh * ww), w.permute(0, 2, 1))  # b, c, n_q
        return x + self.proj_out(out.reshape(b, c, hh, ww))


class TemporalAttnBlock(nn.Module):
    """Single-head attention across the T frames, independently for each pixel, scale C^-1/2."""

    def __init__(self, channels, zq_ch=None, add_conv=False):
        super().__init__()
        self.norm = SpatialNorm(channels, zq_ch, add_conv)
        _qkv_convs(self, channels)

    def forward(self, x, num_frames):
        # QUIRK 2: upstream calls this block without zq, so the SpatialNorm reduces to its plain
        # GroupNorm; norm.conv_y / norm.conv_b exist in the checkpoint but are never used.
        h = self.norm(x, None)
        q, k, v = self.q(h), self.k(h), self.v(h)
        c = x.shape[1]
        q = to_video(q, num_frames).permute(0, 3, 4, 2, 1)  # b, h, w, t, c
        k = to_video(k, num_frames).permute(0, 3, 4, 1, 2)  # b, h, w, c, t
        v = to_video(v, num_frames).permute(0, 3, 4, 1, 2)  # b, h, w, c, t
        w = torch.softmax(torch.matmul(q, k) * (int(c) ** -0.5), dim=-1)  # b, h, w, t_q, t_k
        out = torch.matmul(v, w.transpose(-1, -2))  # b, h, w, c, t_q
        out = from_video(out.permute(0, 3, 4, 1, 2))  # (b t), c, h, w
        return x + self.proj_out(out)


class TemporalResnetBlock(nn.Module):
    """SpatialNorm (per-frame zq) -> SiLU -> Conv3d (3,1,1) pad (1,0,0) -> SpatialNorm -> SiLU ->
    Conv3d (3,1,1); x + h. The Conv3d runs over the frame axis of each pixel."""

    def __init__(self, channels, zq_ch=None, add_conv=False):
        super().__init__()
        self.norm1 = SpatialNorm(channels, zq_ch, add_conv)
        self.conv1 = nn.Conv3d(channels, channels, kernel_size=(3, 1, 1), stride=1, padding=(1, 0, 0))
        self.norm2 = SpatialNorm(channels, zq_ch, add_conv)
        self.conv2 = nn.Conv3d(channels, channels, kernel_size=(3, 1, 1), stride=1, padding=(1, 0, 0))

    def forward(self, x, zq, num_frames):
        h = from_video(self.conv1(to_video(silu(self.norm1(x, zq)), num_frames)))
        h = from_video(self.conv2(to_video(silu(self.norm2(h, zq)), num_frames)))
        return x + h


class Encoder(nn.Module):
    def __init__(self, *, ch, out_ch, ch_mult=(1, 2, 4, 8), num_res_blocks, attn_resolutions, dropout=0.0,
                 resamp_with_conv=True, in_channels, resolution, z_channels, double_z=True, **ignored):
        super().__init__()
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.conv_in = nn.Conv2d(in_channels, ch, 3, 1, 1)
        curr_res = resolution  # NOMINAL resolution decides where attention goes
        in_ch_mult = (1,) + tuple(ch_mult)
        self.down = nn.ModuleList()
        for i_level in range(self.num_resolutions):
            block, attn = nn.ModuleList(), nn.ModuleList()
            block_in, block_out = ch * in_ch_mult[i_level], ch * ch_mult[i_level]
            for _ in range(num_res_blocks):
                block.append(ResnetBlock(block_in, block_out))
                block_in = block_out
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in))
            down = nn.Module()
            down.block, down.attn = block, attn
            if i_level != self.num_resolutions - 1:
                down.downsample = Downsample(block_in, resamp_with_conv)
                curr_res //= 2
            self.down.append(down)
        self.mid = nn.Module()
        self.mid.block_1 = ResnetBlock(block_in, block_in)
        self.mid.attn_1 = AttnBlock(block_in)
        self.mid.block_2 = ResnetBlock(block_in, block_in)
        self.norm_out = SpatialNorm(block_in)
        self.conv_out = nn.Conv2d(block_in, 2 * z_channels if double_z else z_channels, 3, 1, 1)

    def forward(self, x):
        h = self.conv_in(x)
        for i_level in range(self.num_resolutions):
            level = self.down[i_level]
            for i_block in range(self.num_res_blocks):
                h = level.block[i_block](h)
                if len(level.attn) > 0:
                    h = level.attn[i_block](h)
            if i_level != self.num_resolutions - 1:
                h = level.downsample(h)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h)))
        return self.conv_out(silu(self.norm_out(h)))


class Decoder(nn.Module):
    """The 1.0 image decoder, or upstream main's MOVQDecoder when a temporal option is on."""

    def __init__(self, *, ch, out_ch, ch_mult=(1, 2, 4, 8), num_res_blocks, attn_resolutions, dropout=0.0,
                 resamp_with_conv=True, in_channels, resolution, z_channels, give_pre_end=False, zq_ch=None,
                 add_conv=False, temporal=False, temporal_mid_blocks=True, temporal_kernel_size=(3, 3, 3),
                 temporal_conv_padding=(1, 1, 1), flicker_augmentation=False, build_3D_decoder=False,
                 temporal_attention_block=False, temporal_blocks=False, **ignored):
        super().__init__()
        self.is_video = bool(temporal or temporal_blocks or temporal_attention_block or build_3D_decoder)
        self.temporal_attention_block = temporal_attention_block
        self.temporal_blocks = temporal_blocks
        self.num_resolutions = len(ch_mult)
        self.num_res_blocks = num_res_blocks
        self.give_pre_end = give_pre_end
        tk = dict(temporal_kernel_size=temporal_kernel_size, temporal_conv_padding=temporal_conv_padding,
                  use_3d_conv=build_3D_decoder)
        block_in = ch * ch_mult[-1]
        curr_res = resolution // 2 ** (self.num_resolutions - 1)
        self.conv_in = nn.Conv2d(z_channels, block_in, 3, 1, 1)

        self.mid = nn.Module()
        mid_t = bool(temporal and temporal_mid_blocks)
        # flicker projection: upstream builds it in mid.block_1 only (and only with temporal layers)
        self.mid.block_1 = ResnetBlock(block_in, block_in, zq_ch, add_conv, temporal=mid_t,
                                       flicker_augmentation=flicker_augmentation, **tk)
        self.mid.attn_1 = AttnBlock(block_in, zq_ch, add_conv)
        if temporal_attention_block:
            self.mid.temporal_attn_1 = TemporalAttnBlock(block_in, zq_ch, add_conv)
        self.mid.block_2 = ResnetBlock(block_in, block_in, zq_ch, add_conv, temporal=mid_t, **tk)
        if temporal_blocks:
            self.mid.temporal_block_1 = TemporalResnetBlock(block_in, zq_ch, add_conv)
            self.mid.temporal_block_2 = TemporalResnetBlock(block_in, zq_ch, add_conv)

        self.up = nn.ModuleList()
        for i_level in reversed(range(self.num_resolutions)):
            block, attn = nn.ModuleList(), nn.ModuleList()
            temporal_attn, temporal_block = nn.ModuleList(), nn.ModuleList()
            block_out = ch * ch_mult[i_level]
            for _ in range(num_res_blocks + 1):
                block.append(ResnetBlock(block_in, block_out, zq_ch, add_conv, temporal=bool(temporal), **tk))
                block_in = block_out
                if temporal_blocks:
                    temporal_block.append(TemporalResnetBlock(block_in, zq_ch, add_conv))
                if curr_res in attn_resolutions:
                    attn.append(AttnBlock(block_in, zq_ch, add_conv))
                    if temporal_attention_block:
                        temporal_attn.append(TemporalAttnBlock(block_in, zq_ch, add_conv))
            up = nn.Module()
            up.block, up.attn = block, attn
            if self.is_video:  # empty ModuleLists hold no keys; kept to mirror upstream's structure
                up.temporal_attn, up.temporal_block = temporal_attn, temporal_block
            if i_level != 0:
                up.upsample = Upsample(block_in, resamp_with_conv)
                curr_res *= 2
            self.up.insert(0, up)  # up[0] is the highest resolution
        self.norm_out = SpatialNorm(block_in, zq_ch, add_conv)
        self.conv_out = nn.Conv2d(block_in, out_ch, 3, 1, 1)

    def forward(self, z, zq):
        # the whole batch is one video (only read by the temporal parts)
        t = z.shape[0] if self.is_video else None
        q0 = self.is_video  # quirk 1 only in the temporal decoder
        h = self.conv_in(z)
        h = self.mid.block_1(h, zq, t)
        h = self.mid.attn_1(h, zq, zq_from_frame0=q0)
        if self.temporal_attention_block:
            h = self.mid.temporal_attn_1(h, t)
        if self.temporal_blocks:
            h = self.mid.temporal_block_1(h, zq, t)
        h = self.mid.block_2(h, zq, t)
        if self.temporal_blocks:
            h = self.mid.temporal_block_2(h, zq, t)
        for i_level in reversed(range(self.num_resolutions)):
            level = self.up[i_level]
            for i_block in range(self.num_res_blocks + 1):
                h = level.block[i_block](h, zq, t)
                if self.temporal_blocks:
                    h = level.temporal_block[i_block](h, zq, t)
                if len(level.attn) > 0:
                    h = level.attn[i_block](h, zq, zq_from_frame0=q0)
                    if self.temporal_attention_block:
                        h = level.temporal_attn[i_block](h, t)
            if i_level != 0:
                h = level.upsample(h)
        if self.give_pre_end:
            return h
        return self.conv_out(silu(self.norm_out(h, zq)))


class MoVQ(nn.Module):
    """Configured by upstream's generator_params dict (temporal decoder options included)."""

    def __init__(self, generator_params):
        super().__init__()
        p = dict(generator_params)
        for name in ("embed_dim", "n_embed"):  # not read by upstream's MoVQ (no quantizer)
            p.pop(name, None)
        z = p["z_channels"]
        self.encoder = Encoder(**p)
        self.quant_conv = nn.Conv2d(z, z, 1)
        self.post_quant_conv = nn.Conv2d(z, z, 1)
        self.decoder = Decoder(zq_ch=z, **p)

    @torch.no_grad()
    def encode(self, x):
        return self.quant_conv(self.encoder(x))

    @torch.no_grad()
    def decode(self, quant):
        return self.decoder(self.post_quant_conv(quant), quant)


def init_params(model, seed):
    """Deterministic non-zero initialisation that keeps activations O(1).

    Conv / linear weights ~ N(0, g^2 / fan_in); biases ~ 0.1 N(0, 1); GroupNorm weights 1 + 0.1 N,
    biases 0.1 N; SpatialNorm conv_y ~ 1 + small, conv_b small; temporal merges in (0.3, 0.7).
    Values are drawn in f32 in the order of `named_parameters()`, so the result depends only on
    the seed and the configuration.
    """
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float32)

    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            parent = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else ""
            if leaf.startswith("temporal_merge"):
                p.copy_(0.3 + 0.4 * torch.rand(p.shape, generator=g, dtype=torch.float32))
            elif parent == "norm_layer":
                p.copy_((1.0 if leaf == "weight" else 0.0) + 0.1 * randn(*p.shape))
            elif parent in ("conv_y", "conv_b"):
                if leaf == "weight":
                    p.copy_(0.2 * randn(*p.shape) / math.sqrt(p[0].numel()))
                else:
                    p.copy_((1.0 if parent == "conv_y" else 0.0) + 0.1 * randn(*p.shape))
            elif leaf == "weight":
                gain = 0.5 if parent in ("conv2", "proj_out") else 1.0
                p.copy_(gain * randn(*p.shape) / math.sqrt(p[0].numel()))
            else:
                p.copy_(0.1 * randn(*p.shape))
    return model
