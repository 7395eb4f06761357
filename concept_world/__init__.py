"""The concept world: a tiny, exactly measurable SD1.5-format model trained by the project.

Modules (pure numpy/torch unless noted):
  scenes    - the seeded synthetic captioned dataset (palette, concepts, renderer, captions)
  latent    - the fixed colour map between images and latents (what the VAE is built to do)
  detect    - the method-agnostic detector (colour rules on decoded images)
  prompts   - fixed prompt sets and the world's safety-context preset
  construct - text encoder and VAE weights built into the host's own modules (needs the host)
  build     - training, cache, `ensure_world(comfyui_path)` (needs the host)
  gates     - validity gates: sample through the real host, detect, compare with the bars
"""
