"""One step of the Kandinsky Video 1.0 sampler (upstream `BaseDiffusion`), written from
../shared/design/kandinsky-video-spec.md section 2, and one strided step of the Kandinsky 3.0
sampler (upstream Kandinsky-3 `BaseDiffusion.p_sample`: DDIM with eta between two step indices).

Precision: the betas are float32 exactly as upstream makes them (cosine: Python floats rounded to
f32; linear: torch.linspace in f32). Everything derived from them (alpha_bar, the posterior
coefficients, the log variance) and the step itself are computed here in float64 from those f32
betas and the f32 step inputs; upstream keeps the derived values in f32 too, which differs from this
by f32 rounding only (far below the parity tolerance).

The step takes the already-guided model prediction (guidance, `(w + 1)·c − w·u`, happens before).
"""
import math

import torch


def named_beta_schedule(name, timesteps):
    """Betas (float32) of the 'linear' or 'cosine' schedule over `timesteps` steps."""
    if name == "linear":
        scale = 1000 / timesteps
        return torch.linspace(scale * 0.0001, scale * 0.02, timesteps, dtype=torch.float32)
    if name == "cosine":
        def alpha_bar(t):
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = [min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), 0.999)
                 for i in range(timesteps)]
        return torch.tensor(betas, dtype=torch.float32)
    raise ValueError(f"unknown schedule {name!r}")


class Diffusion:
    def __init__(self, schedule, timesteps, percentile=None):
        betas = named_beta_schedule(schedule, timesteps).double()
        self.betas = betas
        self.num_timesteps = timesteps
        alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(alphas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - self.alphas_cumprod)
        one_minus = 1.0 - self.alphas_cumprod
        self.coef1 = torch.sqrt(self.alphas_cumprod_prev) * betas / one_minus
        self.coef2 = torch.sqrt(alphas) * (1.0 - self.alphas_cumprod_prev) / one_minus
        self.variance = betas * (1.0 - self.alphas_cumprod_prev) / one_minus
        # variance[0] is 0 (log -inf): the first entry is replaced by the second
        self.log_variance = torch.log(torch.cat([self.variance[1:2], self.variance[1:]]))
        self.percentile = percentile
        self.time_scale = 1000 // timesteps  # the model gets t * time_scale (not used by the step)

    @staticmethod
    def _per_row(values, t, ndim):
        return values[t].reshape(t.shape[0], *((1,) * (ndim - 1)))

    def dynamic_threshold(self, x0):
        """Per batch row: s = max(1, quantile_p(|x0|)); clip(x0, -s, s) / s. No p: clip to [-1, 1]."""
        if self.percentile is None:
            return torch.clamp(x0, -1.0, 1.0)
        b = x0.shape[0]
        s = torch.quantile(x0.reshape(b, -1).abs(), self.percentile, dim=-1)  # linear interpolation
        s = torch.clamp(s, min=1.0).reshape(b, *((1,) * (x0.dim() - 1)))
        return torch.maximum(torch.minimum(x0, s), -s) / s

    def step(self, x, t, pred, noise, v_prediction=False):
        """x: current latent (B, ...); t: step index per row (int64, B); pred: guided eps (or v);
        noise: standard normal like x. Returns the next latent, float64."""
        x, pred, noise = x.double(), pred.double(), noise.double()
        t = t.long()
        a = self._per_row(self.sqrt_alphas_cumprod, t, x.dim())
        s = self._per_row(self.sqrt_one_minus_alphas_cumprod, t, x.dim())
        x0 = a * x - s * pred if v_prediction else (x - s * pred) / a
        x0 = self.dynamic_threshold(x0)
        mean = self._per_row(self.coef1, t, x.dim()) * x0 + self._per_row(self.coef2, t, x.dim()) * x
        nonzero = (t != 0).to(torch.float64).reshape(t.shape[0], *((1,) * (x.dim() - 1)))
        logvar = self._per_row(self.log_variance, t, x.dim())
        return mean + nonzero * torch.exp(0.5 * logvar) * noise

    def strided_step(self, x, t, prev_t, pred, noise, eta):
        """Kandinsky 3: from index t to prev_t < t (per row). x0 from the eps prediction, thresholded;
        eps recomputed from that x0; sigma = sqrt(eta (1 - a_t/a_p)(1 - a_p)/(1 - a_t)) with
        a = alpha_bar; x_prev = sqrt(a_p) x0 + sqrt(1 - a_p - sigma^2) eps + [prev_t != 0] sigma z.
        prev_t = 0 reads alpha_bar[0], as upstream. Returns float64."""
        x, pred, noise = x.double(), pred.double(), noise.double()
        t, prev_t = t.long(), prev_t.long()
        a_t = self._per_row(self.alphas_cumprod, t, x.dim())
        a_p = self._per_row(self.alphas_cumprod, prev_t, x.dim())
        x0 = self.dynamic_threshold((x - torch.sqrt(1.0 - a_t) * pred) / torch.sqrt(a_t))
        eps = (x - torch.sqrt(a_t) * x0) / torch.sqrt(1.0 - a_t)
        sigma = torch.sqrt(eta * (1.0 - a_t / a_p) * (1.0 - a_p) / (1.0 - a_t))
        mean = torch.sqrt(a_p) * x0 + torch.sqrt(1.0 - a_p - sigma ** 2) * eps
        nonzero = (prev_t != 0).to(torch.float64).reshape(t.shape[0], *((1,) * (x.dim() - 1)))
        return mean + nonzero * sigma * noise
