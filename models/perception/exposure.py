"""Faces in an underexposed frame read at a normal exposure.

Why: the mesh network reads the lids of a dark picture as further apart. Each shared video filmed again
with a tenth of the light (``tools/low_light.py``) measured its shut eyes at 1.07 mm on average and up
to 2.3 mm, where the same frames measured 0.38 mm in the original light: an incomplete closure that is
not there. Brought back to a normal exposure, as a longer exposure would have brought them (scaled in
linear light), they measure about 0.5 mm (models/README.md, "Low light").

Whether a picture is underexposed is judged on the whole frame: its highlights (the 99.5th percentile
of luminance) sit at 135-242 grey levels over every frame of the shared videos and at 151 or more in
every shared photo, and at 52-85 with a tenth of the light. A face crop's own brightness cannot tell:
it is also the patient's skin tone, and brightening the dim-looking, normally exposed stage-lit faces
of ``hamilton_white_house`` changed their reading on the mask (asymmetry r -0.07 in both of two
paired seeds). So a frame two stops or more under gets a gain that brings its highlights to
NORMAL_HIGHLIGHT, at most four stops, and every other frame is read exactly as filmed (every shared
photo and video frame is). The whole frame is brought up before any network sees it: detection, mesh,
eyes and the iris fit all read it as in normal light. (Reading only the eyes again from brightened
crops, the first version, left the glasses of ``livep_d12`` reading shut eyes 2 mm open.) A gain
amplifies the picture's noise with it; noise is what is left of low light (models/README.md).
"""

from __future__ import annotations

import math

import torch

NORMAL_HIGHLIGHT = 200.0  # grey level of a normally exposed frame's highlights (shared videos: 135-242)
HIGHLIGHT_QUANTILE = 0.995
MIN_GAIN = 4.0  # in linear light: a frame less than two stops under is read as filmed
MAX_GAIN = 16.0  # four stops
SAMPLE_PIXELS = 16384  # a percentile needs no more: a regular grid of about this many pixels is read
_LUMA = (0.299, 0.587, 0.114)


def srgb_to_linear(v: torch.Tensor) -> torch.Tensor:
    """sRGB values in [0, 1] to linear light."""
    return torch.where(v <= 0.04045, v / 12.92, ((v.clamp(min=0.0) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: torch.Tensor) -> torch.Tensor:
    """Linear light to sRGB values in [0, 1] (clipped, as a sensor saturates)."""
    v = v.clamp(0.0, 1.0)
    return torch.where(v <= 0.0031308, v * 12.92, 1.055 * v.clamp(min=1e-8) ** (1 / 2.4) - 0.055)


def highlight(frame: torch.Tensor) -> torch.Tensor:
    """The 99.5th percentile of luminance of a (1, 3, H, W) RGB frame in 0..255, as a 0-d tensor."""
    h, w = frame.shape[-2:]
    stride = max(1, round(math.sqrt(h * w / SAMPLE_PIXELS)))
    sample = frame[0, :, ::stride, ::stride]
    weights = torch.tensor(_LUMA, dtype=frame.dtype, device=frame.device)
    luma = torch.einsum("c,chw->hw", weights, sample).flatten()
    return luma.kthvalue(max(1, math.ceil(HIGHLIGHT_QUANTILE * luma.numel()))).values


_NORMAL_LINEAR = float(srgb_to_linear(torch.tensor(NORMAL_HIGHLIGHT / 255.0)))


def exposure_gain(frame: torch.Tensor) -> torch.Tensor:
    """The linear-light gain that brings a (1, 3, H, W) RGB frame in 0..255 to a normal exposure: 1 for a
    frame that is normally lit or less than two stops under. A 0-d tensor on the frame's device: the
    caller decides when the number goes to the host."""
    level = highlight(frame).clamp(min=1.0) / 255.0
    gain = (_NORMAL_LINEAR / srgb_to_linear(level)).clamp(max=MAX_GAIN)
    return torch.where(gain >= MIN_GAIN, gain, torch.ones_like(gain))


def expose(images: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB images in 0..255 scaled by ``gain`` (N,) in linear light, as a longer exposure."""
    lifted = srgb_to_linear(images / 255.0) * gain[:, None, None, None]
    return linear_to_srgb(lifted) * 255.0


def expose_levels(levels: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``expose`` for one picture of 8-bit ``levels`` (any shape, uint8) and a 0-d ``gain``, as float
    0..255: the same values (to float rounding), looked up from its 256 levels rather than computed
    per pixel (a 1080p frame on two CPU cores: about 250 ms computed, about 50 ms looked up)."""
    every_level = torch.arange(256, dtype=torch.float32, device=levels.device)[None, None, None]
    return expose(every_level, gain.reshape(1)).flatten()[levels.long()]
