"""Run the frozen concept-world protocol (concept_world/protocol.json) through the real host.

For one world and one split, every method samples all (prompt, noise slot) pairs in one
batched host call: the batch is P prompts x S slots (n = slot * P + prompt) and the host
draws its noise from the protocol's noise seed, so every method sees exactly the same
initial noise per sample. Latents are decoded with the world's closed-form VAE map (checked
against the host's VAEDecode) and read by the world's detector.

Methods and the node or host path each one runs:
  none       KSampler, empty negative (the reference)
  negative   KSampler with the protocol's negative text
  sld        SLDGuider (baselines.py) with the host's sampler, noise and sigmas
  uce        KSampler on a clone of the model with the closed-form cross-attention edit
  context    KSampler on "prompt + safety context" (SafetyContextEncode's composition)
  switch     DualLatentKSampler, w 1 at threshold tau (the user prompt, then the safety context)
  ours       DualLatentKSampler (every_step or at_end) at w < 1
  content    DualLatentKSampler with a detector in the loop (issue 23: concept_world/in_loop.py's
             cell detector, or the scorer itself as an oracle)
"""
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from . import baselines
from .harness import Counter, counted, pack_module, stack_conds


# optional inputs of DualLatentKSampler that a setting may carry (refresh, localized regions)
EXTRA_INPUTS = ("refresh", "region_mode", "region_threshold")


def node_inputs(host, node_id="DualLatentKSampler"):
    """The input names the host's copy of a node declares."""
    schema = host.node(node_id).define_schema()
    return {i.id for i in schema.inputs}


def key(family, setting):
    return family + "|" + json.dumps(setting, sort_keys=True)


# the harness files whose code decides a setting's samples (with the pack's nodes/*.py): the run cache's key
CODE = ("protocol_run.py", "baselines.py", "harness.py")


def add_run_cache_option(ap):
    """The --run-cache option of the protocol's benchmarks (protocol, transfer, region)."""
    ap.add_argument("--run-cache", nargs="?", const="default", default=None, metavar="DIR",
                    help="keep every setting's samples in DIR (default: the cache's protocol_runs/) and reuse them: "
                         "a run cut short goes on where it stopped")


def run_cache_dir(value):
    """--run-cache's folder: None (off), the default beside the worlds, or the one given."""
    if value != "default":
        return value and Path(value)
    from concept_world import build
    return build.cache_root().parent / "protocol_runs"


def host_version():
    try:
        import comfyui_version
        return comfyui_version.__version__
    except ImportError:
        return "unknown"


class SplitRun:
    """One world's split through the host. With `run_cache` (a folder), every method setting's
    samples are kept on disk under a key of all that decides them, and a later SplitRun of the
    same key reads them back instead of sampling: a protocol run cut short by a time limit goes on
    where it stopped, and gives the same table as one run through."""

    def __init__(self, host, checkpoint, proto, split, log=print, prompts=None, slots=None, run_cache=None):
        from concept_world import detect, latent
        self.host, self.proto, self.log = host, proto, log
        self.checkpoint, self.run_cache, self._key_base = checkpoint, run_cache and Path(run_cache), None
        self.detect, self.latent_map = detect, latent
        self.prompts = prompts if prompts is not None else proto["splits"][split]
        self.slots = slots or proto["slots"][split]
        self.s = proto["sampling"]
        self.space = latent.SPACES[proto.get("arch", "sd15")]
        with torch.inference_mode():
            self.model, self.clip, self.vae = host.load_checkpoint(checkpoint)[:3]
        self.presets = pack_module(host, "presets")
        self.dual_sampler = pack_module(host, "dual_sampler")
        self.latent_math = pack_module(host, "latent_math")
        self._enc, self._uce = {}, {}
        self.texts = [p["text"] for p in self.prompts]
        self.positive = self.batch([self.encode(t) for t in self.texts])
        self.empty = self.encode("")
        sf = proto["safety"]
        self.negative = self.encode(sf["negative"])
        self.sld_concept = self.encode(sf["sld_concept"])

    # -- conditioning ---------------------------------------------------------------------
    def encode(self, text):
        if text not in self._enc:
            with torch.inference_mode():
                self._enc[text] = self.host.encode(self.clip, text)
        return self._enc[text]

    def batch(self, conds):
        """One CONDITIONING for the whole P x S batch (slot-major)."""
        return stack_conds(conds * self.slots)

    def safe_texts(self, context, mode):
        preset = self.presets.Preset("concept-world", "protocol preset", context,
                                     tuple(self.proto["safety"]["unsafe_terms"]), "")
        return [self.presets.compose_safe_text(t, preset, mode) for t in self.texts]

    def safe_positive(self, context, mode):
        return self.batch([self.encode(t) for t in self.safe_texts(context, mode)])

    def uce_model(self, target, preserve, lam):
        k = (target, preserve, lam)
        if k not in self._uce:
            texts = [""]
            if preserve == "dev_concepts":   # dev proximal and far concepts, every phrasing; "" always
                from concept_world.scenes import CONCEPTS
                for c in self.proto["dev_proximal"] + self.proto["far"]:
                    texts += CONCEPTS[c][2]
            self._uce[k], n = baselines.uce_edit(self.model, self.clip, self.proto["safety"]["uce_erase"], target,
                                                 tuple(texts), lam=lam)
        return self._uce[k]

    # -- sampling -------------------------------------------------------------------------
    def latent(self):
        return self.host.empty_latent(self.s["width"], self.s["height"], batch_size=len(self.prompts) * self.slots)

    def common(self, positive=None):
        s = self.s
        return dict(seed=self.proto["noise_seed"], steps=s["steps"], cfg=s["cfg"], sampler_name=s["sampler_name"],
                    scheduler=s["scheduler"], positive=positive or self.positive, latent_image=self.latent())

    def sample(self, family, st, model):
        """The method's output LATENT tuple for the whole batch (one host call)."""
        if family in ("none", "negative", "uce"):
            neg = self.negative if family == "negative" else self.empty
            return self.host.call("KSampler", model=model, negative=neg, denoise=1.0, **self.common())
        if family == "context":
            return self.host.call("KSampler", model=model, negative=self.empty, denoise=1.0,
                                  **self.common(self.safe_positive(st["context"], st["mode"])))
        if family == "sld":
            preset = baselines.SLD_PRESETS[st["preset"]]
            if "guidance_scale" in st:
                preset = baselines.SLDPreset(preset.warmup_steps, st["guidance_scale"], preset.threshold,
                                             preset.momentum_scale, preset.momentum_beta)
            c = self.common()
            return (baselines.sample_sld(self.dual_sampler, model, c["seed"], c["steps"], c["cfg"], c["sampler_name"],
                                         c["scheduler"], self.positive, self.empty, self.sld_concept,
                                         c["latent_image"], preset),)
        if family in ("ours", "switch"):
            w = 1.0 if family == "switch" else st["weight"]
            merge = "every_step" if family == "switch" else st["merge"]
            extra = {k: st[k] for k in EXTRA_INPUTS if k in st}
            return self.host.call("DualLatentKSampler", model=model, negative=self.empty,
                                  safe_positive=self.safe_positive(st["context"], st["mode"]), denoise=1.0,
                                  safety_weight=w, context_threshold=st["threshold"], merge=merge, **extra,
                                  **self.common())
        if family == "content":
            return self.host.call("DualLatentKSampler", model=model, negative=self.empty,
                                  safe_positive=self.safe_positive(st["context"], st["mode"]), denoise=1.0,
                                  safety_weight=st["weight"], context_threshold=st["threshold"], merge=st["merge"],
                                  detector=self.content_check(st), **self.common())
        raise ValueError(f"unknown method family {family!r}")

    def content_check(self, st):
        """The pack's ContentCheck for a content setting: the in-loop cell detector or the oracle,
        decoding with the world's closed-form VAE map (the host's VAEDecode within 2/255)."""
        from concept_world import in_loop
        detector = {"cell": in_loop.CellDetector, "colour_rule": in_loop.ColourRuleDetector}[st["detector"]]()
        return pack_module(self.host, "content").ContentCheck(
            detector, in_loop.WorldDecoder(self.space), score_threshold=st["score_threshold"],
            check_start=st["check_start"], check_every=st["check_every"], go_back=st["go_back"], grow=st["grow"],
            confirm=st.get("confirm", False))

    def decode(self, samples):
        return self.latent_map.raw_to_image(samples.detach().cpu().double().numpy(), space=self.space)

    def analysed(self, samples):
        """{"analyses", "cells"}: the detector's reading of the decoded samples, from the block
        colours directly: the decoder at one pixel per latent pixel gives each block's float32 colour,
        and a block's 64 equal float32 values average to exactly that in float64, so this equals
        analysing decode(samples), bit for bit, without the 8x upsampling (a transformer-world cell
        is the mean of its 2x2 latent pixels)."""
        cells = self.latent_map.raw_to_cells(samples.detach().cpu().double().numpy(), self.space)
        return {"analyses": self.detect.analyse_cells(cells), "cells": cells}

    def check_decoder(self, samples, n=8):
        with torch.inference_mode():
            host = self.host.call("VAEDecode", samples={"samples": samples[:n]}, vae=self.vae)[0]
        err = float(np.abs(host.float().cpu().numpy() - self.decode(samples[:n])).max())
        if err > 2.0 / 255:
            raise RuntimeError(f"the world's decoder differs from the host's VAEDecode by {err:.4f}")
        return err

    def run(self, family, st):
        """{"latents", "analyses", "evals", "seconds", "branches"?, "region"?} of one method setting
        (read back from the run cache when it holds this setting)."""
        path = self.run_cache and self.run_cache / f"{self.run_key(family, st)}.pt"
        if path and path.exists():
            kept = torch.load(path, weights_only=True)
            return {**kept, "cached": True, **self.analysed(kept["latents"])}
        kept = self._sample_run(family, st)
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(kept, str(path) + ".tmp")
            os.replace(str(path) + ".tmp", path)   # a run killed mid-write leaves no half file
        return {**kept, **self.analysed(kept["latents"])}

    def _sample_run(self, family, st):
        counter = Counter()
        base = self.uce_model(st["target"], st["preserve"], st["lam"]) if family == "uce" else self.model
        t0 = time.perf_counter()
        with torch.inference_mode():
            outs = self.sample(family, st, counted(base, counter))
        seconds = time.perf_counter() - t0
        samples = outs[0]["samples"].float().cpu()
        if not torch.isfinite(samples).all():
            raise RuntimeError(f"{family} {st}: non-finite latent")
        r = {"latents": samples, "evals": counter.rows, "seconds": seconds}
        if family == "ours" and st["merge"] == "at_end":
            r["branches"] = tuple(o["samples"].float().cpu() for o in outs[1:3])
        if st.get("region_mode", "none") != "none" or family == "content":
            r["region"] = outs[3].float().cpu()   # the sampler's region output: where safety acted (pixels)
        return r

    def run_key(self, family, st):
        """A digest of everything that decides a setting's samples: the checkpoint file, the
        pack's and the harness's code, the host and torch versions, the device (and on the CPU
        the thread count), the sampling settings, the protocol's safety texts and preserve
        concepts, the prompts and slots."""
        if self._key_base is None:
            import comfy.model_management
            import folder_paths
            h = hashlib.sha256()
            with open(folder_paths.get_full_path_or_raise("checkpoints", self.checkpoint), "rb") as f:
                for block in iter(lambda: f.read(1 << 24), b""):
                    h.update(block)
            root = Path(__file__).resolve().parents[2]
            in_loop = [root / "concept_world" / "in_loop.py", root / "concept_world" / "worlds" /
                       "in-loop-cell-detector.safetensors"]   # the content family's detector
            for code in sorted(root.glob("nodes/*.py")) + [root / "bench" / "efficacy" / n for n in CODE] + in_loop:
                h.update(code.read_bytes())
            device = str(comfy.model_management.get_torch_device())
            threads = torch.get_num_threads() if device == "cpu" else None   # CPU floats depend on them
            h.update(json.dumps([host_version(), torch.__version__, device, threads, self.s, self.proto["noise_seed"],
                                 self.proto["safety"], self.proto["dev_proximal"], self.proto["far"], self.texts,
                                 self.slots], sort_keys=True).encode())
            self._key_base = h.hexdigest()
        return hashlib.sha256((self._key_base + key(family, st)).encode()).hexdigest()[:32]

    def merged(self, base, w):
        """at_end at weight w from a run's two branches, with the pack's own merge formula."""
        z = self.latent_math.weighted_merge(base["branches"][0], base["branches"][1], w)
        return {"latents": z, "evals": base["evals"], "seconds": base["seconds"], "cached": base.get("cached", False),
                **self.analysed(z)}
