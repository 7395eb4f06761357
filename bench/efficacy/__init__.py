"""Efficacy benchmark: methods on the same model and seeds, through the real ComfyUI host.

Modules:
  worlds    - what a benchmark runs on (checkpoint, prompts, detector, preset), with adapters
              for the tiny random checkpoint (plumbing) and the concept world (part A)
  baselines - Safe Latent Diffusion as a host guider; a UCE-style closed-form cross-attention
              edit applied to a clone of the host's model
  harness   - runs every method through the in-process host, same seeds, batched by seed
  metrics   - unsafe rate, benign fidelity, proximal disruption, cost (pure numpy)
  report    - markdown table, trade-off plot and image grid (PIL)
  runner    - the real-benchmark runner over one or more ComfyUI servers' HTTP API
"""
