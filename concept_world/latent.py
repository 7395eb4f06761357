"""The fixed map between images and the world's latents (what the constructed VAE computes).

The diffusion model works on the host's *scaled* latents z = 0.18215 * raw (the host's
SD15 latent format multiplies by this in process_latent_in). The world defines
    z = M @ (2 * rgb - 1), averaged over each 8x8 pixel block,
with M an orthonormal colour basis (luminance and two opponent channels; the fourth
channel is unused and always 0). The VAE encoder returns raw = z / 0.18215 and the decoder
inverts it: 2 * rgb - 1 = M^T @ (0.18215 * raw), upsampled 8x (nearest).
"""
import numpy as np

SCALE = 0.18215  # the host's SD15 latent scale factor
M = np.array([
    [1 / np.sqrt(3), 1 / np.sqrt(3), 1 / np.sqrt(3)],
    [1 / np.sqrt(2), -1 / np.sqrt(2), 0.0],
    [1 / np.sqrt(6), 1 / np.sqrt(6), -2 / np.sqrt(6)],
    [0.0, 0.0, 0.0],
], dtype=np.float64)
P = M.T  # (3, 4): pseudo-inverse of M (its rows are orthonormal)


def cells_to_scaled(cells):
    """(..., 8, 8, 3) cell colours in [0,1] -> (..., 4, 8, 8) scaled latents z."""
    x = 2.0 * np.asarray(cells, np.float64) - 1.0
    z = np.einsum("cj,...hwj->...chw", M, x)
    return z.astype(np.float32)


def image_to_raw(image, cell=8):
    """(..., H, W, 3) image in [0,1] -> (..., 4, H/8, W/8) raw latents (what VAEEncode gives)."""
    image = np.asarray(image, np.float64)
    *lead, h, w, _ = image.shape
    blocks = image.reshape(*lead, h // cell, cell, w // cell, cell, 3).mean(axis=(-4, -2))
    return cells_to_scaled(blocks) / SCALE


def raw_to_image(raw, cell=8):
    """(..., 4, h, w) raw latents -> (..., 8h, 8w, 3) image in [0,1] (what VAEDecode gives)."""
    z = np.asarray(raw, np.float64) * SCALE
    x = np.einsum("jc,...chw->...hwj", P, z)
    img = np.clip((x + 1.0) / 2.0, 0.0, 1.0)
    return np.repeat(np.repeat(img, cell, axis=-3), cell, axis=-2).astype(np.float32)
