"""The concept world: tiny, exactly measurable models trained by the project, in two
architectures (an SD1.5-format UNet and an SD3-format MMDiT) on the same scenes.

Modules (pure numpy/torch unless noted):
  scenes    - the seeded synthetic captioned dataset (palette, concepts, renderer, captions)
  latent    - the fixed colour map between images and latents (what the VAE is built to do)
  detect    - the method-agnostic detector (colour rules on decoded images)
  prompts   - fixed prompt sets and the world's safety-context preset
  construct - text encoder and VAE weights built into the host's own modules (needs the host)
  build     - training, cache, `ensure_world(comfyui_path)` (needs the host)
  transformer - the SD3-format MMDiT world: training, shipped weights, assembly (needs the host)
  gates     - validity gates: sample through the real host, detect, compare with the bars
"""


def world_module(arch="sd15"):
    """The module that builds an architecture's worlds (checkpoint_name, ensure_world,
    world_info): build (the SD1.5-format UNet) or transformer (the SD3-format MMDiT)."""
    from . import build, transformer
    if arch not in ("sd15", "mmdit"):
        raise ValueError(f"unknown world architecture {arch!r}: expected 'sd15' or 'mmdit'")
    return transformer if arch == "mmdit" else build
