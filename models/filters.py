"""Temporal filters chosen so that they keep what clinicians read.

A blink lasts 100-400 ms (3+ frames at 30 fps, 2.5 at 25 fps); nystagmus beats up to about 5 Hz. A
3-frame running median removes single-frame landmark glitches but keeps any run of two or more frames,
so it keeps every blink; it passes a 5 Hz oscillation sampled at 25 fps or more with most of its
amplitude. Head pose gets a light binomial smoothing against jitter (rendering only).
"""

from __future__ import annotations

import numpy as np


def median3(x: np.ndarray) -> np.ndarray:
    """Running median over 3 samples along axis 0 (ends kept). NaNs are ignored where possible."""
    if x.shape[0] < 3:
        return x.copy()
    stacked = np.stack([x[:-2], x[1:-1], x[2:]], axis=0)
    out = x.copy()
    with np.errstate(all="ignore"):
        mid = np.nanmedian(stacked, axis=0)
    out[1:-1] = np.where(np.isnan(mid), x[1:-1], mid)
    return out


def binomial3(x: np.ndarray) -> np.ndarray:
    """[1, 2, 1] / 4 smoothing along axis 0 with edge replication."""
    if x.shape[0] < 3:
        return x.copy()
    padded = np.concatenate([x[:1], x, x[-1:]], axis=0)
    return 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
