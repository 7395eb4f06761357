"""The fixed map between images and the world's latents (what the constructed VAE computes).

The diffusion model works on the host's *scaled* latents z = (raw - shift) * scale (the
host's latent format applies this in process_latent_in: SD1.5 scale 0.18215, no shift; SD3
scale 1.5305, shift 0.0609). The world defines
    z = M @ (2 * rgb - 1), averaged over each 8x8 pixel block,
with M an orthonormal colour basis (luminance and two opponent channels) on the first three
latent channels; every other channel (the fourth of SD1.5, the last 13 of SD3) is always 0.
The VAE encoder returns raw = z / scale + shift and the decoder inverts it:
2 * rgb - 1 = M^T @ (scale * (raw - shift)), upsampled 8x (nearest).
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Space:
    """A host latent format as the world uses it: channel count, scale and shift factors, and
    how many latent pixels a world cell spans per side."""
    channels: int
    scale: float
    shift: float = 0.0
    per_cell: int = 1


SD15 = Space(4, 0.18215)              # the host's SD15 latent format: one latent pixel a cell
# the host's SD3 latent format (the transformer world): a cell is 2x2 latent pixels, so the
# MMDiT's 2x2 patches are the world's cells (the host's MMDiT cannot run patch size 1)
SD3 = Space(16, 1.5305, 0.0609, per_cell=2)
SPACES = {"sd15": SD15, "mmdit": SD3}    # by the protocol file's "arch"
SCALE = SD15.scale
M = np.array([
    [1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)],
    [1 / np.sqrt(2), -1 / np.sqrt(2), 0.0],
    [1 / np.sqrt(6), 1 / np.sqrt(6), -2 / np.sqrt(6)],
    [0.0, 0.0, 0.0],
], dtype=np.float64)
P = M.T  # (3, 4): pseudo-inverse of M (its rows are orthonormal)


def colours_to_scaled(colours, space=SD15):
    """(..., h, w, 3) colours in [0,1], one per latent pixel -> (..., channels, h, w) scaled latents."""
    x = 2.0 * np.asarray(colours, np.float64) - 1.0
    z = np.einsum("cj,...hwj->...chw", M, x)
    if space.channels > 4:
        pad = np.zeros(z.shape[:-3] + (space.channels - 4,) + z.shape[-2:])
        z = np.concatenate([z, pad], axis=-3)
    return z


def cells_to_scaled(cells, space=SD15):
    """(..., 8, 8, 3) cell colours in [0,1] -> (..., channels, 8 * per_cell, 8 * per_cell) scaled latents z."""
    z = colours_to_scaled(cells, space)
    if space.per_cell > 1:
        z = np.repeat(np.repeat(z, space.per_cell, axis=-2), space.per_cell, axis=-1)
    return z.astype(np.float32)


def image_to_raw(image, cell=8, space=SD15):
    """(..., H, W, 3) image in [0,1] -> (..., channels, H/8, W/8) raw latents (what VAEEncode gives)."""
    image = np.asarray(image, np.float64)
    *lead, h, w, _ = image.shape
    blocks = image.reshape(*lead, h // cell, cell, w // cell, cell, 3).mean(axis=(-4, -2))
    return colours_to_scaled(blocks, space).astype(np.float32) / space.scale + space.shift


def raw_to_image(raw, cell=8, space=SD15):
    """(..., channels, h, w) raw latents -> (..., 8h, 8w, 3) image in [0,1] (what VAEDecode gives)."""
    z = (np.asarray(raw, np.float64)[..., :4, :, :] - space.shift) * space.scale
    x = np.einsum("jc,...chw->...hwj", P, z)
    img = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    return np.repeat(np.repeat(img, cell, axis=-3), cell, axis=-2).astype(np.float32)


def raw_to_cells(raw, space=SD15):
    """(..., channels, h, w) raw latents -> (..., h / per_cell, w / per_cell, 3) float64 cell
    colours: the decoder at one pixel per latent pixel, averaged over each cell's block (for
    SD15 exactly the decoder's float32 colours)."""
    px = raw_to_image(raw, cell=1, space=space).astype(np.float64)
    k = space.per_cell
    if k == 1:
        return px
    *lead, h, w, _ = px.shape
    return px.reshape(*lead, h // k, k, w // k, k, 3).mean(axis=(-4, -2))
