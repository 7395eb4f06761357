"""Run every method on the same model, prompts and seeds through the real (in-process) host.

For each seed, all prompts of the world go through one sampler call as one batch: the
conditionings are stacked along the batch axis and the host draws the batch's noise from
the seed, so every method sees exactly the same initial noise per (prompt, seed). Images
are decoded by the checkpoint's VAE (the host's VAEDecode) and read by the world's
detector. Model evaluations are counted with the host's UNet wrapper hook.

Methods (all on the same loaded checkpoint):
  none      KSampler, empty negative
  negative  KSampler with the preset's negative text
  sld       SLDGuider (baselines.py) run by the host's sampler, preset WEAK/MEDIUM/STRONG/MAX
  uce       KSampler on a clone of the model with the closed-form attn2 edit
  ours      DualLatentKSampler (every_step / at_end) with SafetyContextEncode's composition
"""
import importlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import baselines, metrics


@dataclass(frozen=True)
class Method:
    family: str
    setting: str = ""
    merge: str = ""
    weight: float = 0.0
    threshold: float = 0.0
    sld: str = ""
    preserve: bool = True

    @property
    def key(self):
        return f"{self.family}|{self.setting}"


WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
THRESHOLDS = (0.0, 0.2, 0.4)


def ours(merge, w, tau):
    return Method("ours", f"{merge} w={w:g} tau={tau:g}", merge=merge, weight=w, threshold=tau)


def full_methods():
    ms = [Method("none"), Method("negative", "preset negative")]
    ms += [Method("sld", name, sld=name) for name in baselines.SLD_PRESETS]
    ms += [Method("uce", "erase+preserve", preserve=True), Method("uce", "erase only", preserve=False)]
    order = (0.2, 0.0, 0.4)   # the default threshold first (partial tables stay useful)
    ms += [ours(m, w, t) for t in order for m in ("every_step", "at_end") for w in WEIGHTS]
    return ms


def small_methods():
    """A few settings that exercise every code path (tests)."""
    return [Method("none"), Method("negative", "preset negative"), Method("sld", "MEDIUM", sld="MEDIUM"),
            Method("uce", "erase+preserve", preserve=True), ours("every_step", 0.0, 0.2),
            ours("every_step", 0.5, 0.2), ours("at_end", 0.5, 0.2)]


def pack_module(host, name):
    """A module of the pack as the host loaded it (the folder name has dashes)."""
    if host.pack_module is None:
        raise RuntimeError("the host did not load the pack")
    return importlib.import_module(f"{host.pack_module.__name__}.nodes.{name}")


def stack_conds(conds):
    """One CONDITIONING whose batch holds each single-prompt conditioning in order."""
    tensors = torch.cat([c[0][0] for c in conds])
    extra = {}
    for k, v in conds[0][0][1].items():
        if torch.is_tensor(v) and all(torch.is_tensor(c[0][1].get(k)) for c in conds):
            extra[k] = torch.cat([c[0][1][k] for c in conds])
        else:
            extra[k] = v
    return [[tensors, extra]]


class Counter:
    """Counts UNet evaluations (batch rows) through the host's unet function wrapper."""

    def __init__(self):
        self.rows = 0

    def __call__(self, apply_model, args):
        self.rows += int(args["input"].shape[0])
        return apply_model(args["input"], args["timestep"], **args["c"])


def counted(model, counter):
    m = model.clone()
    m.set_model_unet_function_wrapper(counter)
    return m


class Bench:
    def __init__(self, host, world, log=print):
        self.host, self.world, self.log = host, world, log
        self.model, self.clip, self.vae = host.load_checkpoint(world.checkpoint)
        self.presets = pack_module(host, "presets")
        self.dual_sampler = pack_module(host, "dual_sampler")
        self.latent_math = pack_module(host, "latent_math")
        self._enc = {}
        self._uce = {}
        self._gate = None
        s = world.safety
        self.preset = self.presets.Preset("bench", "benchmark preset", s.context, tuple(s.unsafe_terms), s.negative)
        texts = [p.text for p in world.prompts]
        self.positive = stack_conds([self.encode(t) for t in texts])
        self.safe_texts = [self.presets.compose_safe_text(t, self.preset, s.mode) for t in texts]
        self.safe_positive = stack_conds([self.encode(t) for t in self.safe_texts])
        self.empty_negative = self.encode("")
        self.preset_negative = self.encode(s.negative)
        self.sld_concept = self.encode(s.sld_concept)

    def encode(self, text):
        if text not in self._enc:
            self._enc[text] = self.host.encode(self.clip, text)
        return self._enc[text]

    def latent(self):
        w = self.world
        return self.host.empty_latent(w.width, w.height, batch_size=len(w.prompts))

    def uce_model(self, preserve):
        if preserve not in self._uce:
            s = self.world.safety
            self._uce[preserve], n = baselines.uce_edit(self.model, self.clip, s.uce_erase, s.uce_target,
                                                        s.uce_preserve if preserve else ())
            self.log(f"[uce] edited {n} cross-attention projections (preserve={preserve})")
        return self._uce[preserve]

    def sample(self, method, seed, model):
        """The method's output LATENTs for every prompt at this seed (one batched host call):
        a tuple whose first item is the result (DualLatentKSampler: also its two branches)."""
        w = self.world
        common = dict(seed=seed, steps=w.steps, cfg=w.cfg, sampler_name=w.sampler, scheduler=w.scheduler,
                      positive=self.positive, latent_image=self.latent())
        f = method.family
        if f in ("none", "negative", "uce"):
            neg = self.preset_negative if f == "negative" else self.empty_negative
            return self.host.call("KSampler", model=model, negative=neg, denoise=1.0, **common)
        if f == "sld":
            return baselines.sample_sld(self.dual_sampler, model, seed, w.steps, w.cfg, w.sampler, w.scheduler,
                                        self.positive, self.empty_negative, self.sld_concept, self.latent(),
                                        baselines.SLD_PRESETS[method.sld]),
        if f == "ours":
            return self.host.call("DualLatentKSampler", model=model, negative=self.empty_negative,
                                  safe_positive=self.safe_positive, denoise=1.0, safety_weight=method.weight,
                                  context_threshold=method.threshold, merge=method.merge, **common)
        raise ValueError(f"unknown method family {f!r}")

    def gate_decisions(self):
        """The prompt gate's GateDecision for every prompt of the world, computed by the
        node's own function with the world's text encoder and safety preset. Detector
        terms+similarity: the learned detector is trained on real I2P/COCO prompts, not on
        the concept world's vocabulary."""
        if self._gate is None:
            node = pack_module(self.host, "gate_node")
            with torch.inference_mode():
                self._gate = [node.evaluate_gate(self.clip, p.text, self.preset, detector="terms+similarity")
                              for p in self.world.prompts]
        return self._gate

    def warm_up(self):
        """One untimed unprotected sample: loading the model and first-call set-up would
        otherwise land in the reference method's time and skew every 'wall time x'."""
        with torch.inference_mode():
            self.sample(Method("none"), self.world.seeds[0], self.model)

    def decode(self, out):
        if self.world.decode is not None:
            return np.asarray(self.world.decode(out["samples"]), np.float32)
        return self.host.call("VAEDecode", samples=out, vae=self.vae)[0].detach().float().cpu().numpy()

    def check_decoder(self, run):
        """The world's closed-form decoder must match the host's VAEDecode (on the first seed)."""
        if self.world.decode is None:
            return None
        n = len(self.world.prompts)
        lat = {"samples": torch.from_numpy(run["latents"][:n])}
        with torch.inference_mode():
            host_img = self.host.call("VAEDecode", samples=lat, vae=self.vae)[0].detach().float().cpu().numpy()
        err = float(np.abs(host_img - run["images"][:n]).max())
        if err > 2.0 / 255:
            raise RuntimeError(f"the world's decoder differs from the host's VAEDecode by {err:.4f}")
        return err

    def finish(self, method, latents, images, evals, seconds, branches=None):
        images = np.concatenate(images)
        return {"method": method, "latents": np.concatenate(latents), "images": images,
                "detections": self.world.detect(images), "evals": evals, "seconds": seconds,
                "branches": branches}

    def run(self, method, done=None):
        """One method over all seeds. `done`: earlier runs by key, for the two shortcuts below."""
        done = done or {}
        if method.family == "ours" and method.weight == 0.0:
            # The node's w = 0 path is the host's KSampler whatever the mode and threshold:
            # run it once per mode, reuse it for the other thresholds.
            first = next((r for r in done.values() if r["method"].family == "ours" and r["method"].weight == 0.0
                          and r["method"].merge == method.merge), None)
            if first is not None:
                return dict(first, method=method, reused=first["method"].key)
        if method.family == "ours" and method.merge == "at_end" and method.weight not in (0.0, 0.5):
            # at_end's branches do not depend on w: take them from the w = 0.5 run and merge
            # with the pack's own formula, (1 - w) * z_u + w * z_s.
            base = ours("at_end", 0.5, method.threshold)
            if base.key not in done:
                done[base.key] = self.run(base, done)
            b = done[base.key]
            latents, images = [], []
            for z_u, z_s in b["branches"]:
                z = self.latent_math.weighted_merge(torch.from_numpy(z_u), torch.from_numpy(z_s), method.weight)
                latents.append(z.detach().numpy())
                with torch.inference_mode():
                    images.append(self.decode({"samples": z}))
            r = self.finish(method, latents, images, b["evals"], b["seconds"])
            r["reused"] = base.key
            return r
        counter = Counter()
        base = self.uce_model(method.preserve) if method.family == "uce" else self.model
        model = counted(base, counter)
        latents, images, branches, seconds = [], [], [], 0.0
        with torch.inference_mode():
            for seed in self.world.seeds:
                t0 = time.perf_counter()
                outs = self.sample(method, seed, model)
                seconds += time.perf_counter() - t0
                out = outs[0]
                samples = out["samples"].float().cpu()
                if not torch.isfinite(samples).all():
                    raise RuntimeError(f"{method.key}: non-finite latent at seed {seed}")
                latents.append(samples.numpy())
                images.append(self.decode(out))
                if method.family == "ours" and method.merge == "at_end":
                    branches.append(tuple(o["samples"].float().cpu().numpy() for o in outs[1:3]))
        return self.finish(method, latents, images, counter.rows, seconds, branches or None)


# settings shown with the prompt gate: the default threshold at two weights, at_end, and the
# strongest setting (w 1, tau 0)
GATED = (("every_step", 0.5, 0.2), ("every_step", 1.0, 0.2), ("at_end", 0.5, 0.2), ("every_step", 1.0, 0.0))


def gated_run(bench, runs, base_key, ref_key="none|"):
    """"ours + gate" from existing runs: the prompt gate decides per prompt exactly as the
    SafetyPromptGate node does with detector terms+similarity (default threshold, the world's text
    encoder); a prompt it passes gets w = 0, which is the host's KSampler, i.e. exactly the
    unprotected sample; a flagged prompt gets the method's sample. Cost: the unprotected cost
    on passed prompts, the method's on flagged ones."""
    decisions = bench.gate_decisions()
    flags = np.array([bool(d.is_unsafe) for d in decisions] * len(bench.world.seeds))
    ref, run = runs[ref_key], runs[base_key]
    pick = lambda a, b: np.where(flags.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)  # noqa: E731
    share = flags.mean()
    det = [run["detections"][i] if f else ref["detections"][i] for i, f in enumerate(flags)]
    m = run["method"]
    method = Method("ours_gate", m.setting + " + gate", merge=m.merge, weight=m.weight, threshold=m.threshold)
    return {"method": method, "latents": pick(ref["latents"], run["latents"]),
            "images": pick(ref["images"], run["images"]), "detections": det,
            "evals": ref["evals"] * (1 - share) + run["evals"] * share,
            "seconds": ref["seconds"] * (1 - share) + run["seconds"] * share,
            "reused": base_key, "gate_flags": flags, "gate": decisions,
            "gate_threshold": pack_module(bench.host, "prompt_gate").DEFAULT_THRESHOLD}


def rows_for(world, runs, methods):
    ref = runs[methods[0].key]
    rows = []
    for m in methods:
        r = metrics.compute(world.prompts, len(world.seeds), world.unsafe_concept, ref, runs[m.key])
        rows.append(dict(r, family=m.family, setting=m.setting, key=m.key, method=m,
                         reused=runs[m.key].get("reused")))
    return rows


def run_all(host, world, methods, log=print, gate=True, progress=None):
    """{method key: run} for every method, the unprotected one first; and the metrics rows."""
    if methods[0].family != "none":
        raise ValueError("the first method must be the unprotected reference ('none')")
    bench = Bench(host, world, log=log)
    bench.warm_up()
    runs = {}
    t_all = time.perf_counter()
    for i, m in enumerate(methods):
        t0 = time.perf_counter()
        if m.key not in runs:
            runs[m.key] = bench.run(m, runs)
        if i == 0:
            err = bench.check_decoder(runs[m.key])
            if err is not None:
                log(f"[bench] world decoder matches the host's VAEDecode (max abs diff {err:.2e})")
            if world.gates is not None:   # said early; the caller refuses to report on failure
                log(world.gates(world, metrics.reference_validity(world.prompts, len(world.seeds),
                                                                  world.unsafe_concept, runs[m.key]))[1])
        if progress is not None:
            progress(runs, [mm for mm in methods[:i + 1]])
        log(f"[bench] {i + 1}/{len(methods)} {m.family} {m.setting}: {time.perf_counter() - t0:.1f} s")
    if gate:
        for merge, w, tau in GATED:
            key = ours(merge, w, tau).key
            if key in runs:
                g = gated_run(bench, runs, key)
                runs[g["method"].key] = g
                methods = methods + [g["method"]]
    rows = rows_for(world, runs, methods)
    validity = metrics.reference_validity(world.prompts, len(world.seeds), world.unsafe_concept, runs[methods[0].key])
    return runs, rows, validity, time.perf_counter() - t_all
