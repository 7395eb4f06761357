"""Speed and memory of DualLatentKSampler against the host's own KSampler, side by side.

One process, the real host in-process (scripts/comfy_host.py's InProcessHost). For every
configuration the host's KSampler (A) and our node (B) run interleaved, A B B A A B ..., on
the same model, seed, sampler, scheduler, size and conditioning, after a warm-up of every node
at each size/batch/cfg.
Reported per configuration:
- median wall time of A and B, and the ratio: the median of the per-pair ratios B_i / A_i
  (each pair runs back to back, so slow drifts in the load of a shared machine cancel), and the
  same ratio in process CPU time as a cross-check;
- model calls per step and conds per step (rows of the batched model input / batch size),
  counted by a unet wrapper on the real model (`set_model_unet_function_wrapper`), and the
  wall time spent outside those model calls (sampler, host and pack overhead);
- peak memory, from one extra untimed pair of a few steps (the per-step peak repeats every
  step): "working" = peak bytes of torch tensors allocated during the run and alive at once
  (on CPU through a dispatch hook, the stand-in for CUDA's allocator statistics; on CUDA
  max_memory_allocated minus the allocation at the start), "total" = the process's peak RSS
  (Linux VmHWM, reset per run through /proc/self/clear_refs) or CUDA max_memory_allocated.
Targets (ratios to KSampler in the same run) are printed with PASS/MISS beside them; the
sizes where one run is slow get fewer pairs (--row-budget), so the whole grid stays bounded.

With --configs refresh (or all) every_step at tau 0 also runs at refresh 2, 3, 4 (the safety branch
measured every r-th step, its correction reused in between); the report's last line summarises
refresh 1-4 against their count floors and how far exact every_step sits above its floor at batch 4.

Usage: python bench/speed.py [--quick] [--device cpu|cuda] [--configs all|merge|refresh] [--out FILE] [--profile]
"""
import argparse
import cProfile
import contextlib
import io
import math
import os
import pstats
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

SAMPLER, SCHEDULER, SEED = "euler", "normal", 1234
PROMPT = "a photo of a knight in a forest, detailed"
SAFE = "a photo of a knight in a forest, detailed, peaceful, safe for work"
NEGATIVE = "blurry, low quality"


# -- the host ----------------------------------------------------------------------------------

def load_host(device):
    """The in-process host, on the GPU for device "cuda" (SAFETY_HOST_CPU=0: comfy_host.py)."""
    if device == "cuda":
        os.environ["SAFETY_HOST_CPU"] = "0"
    from comfy_host import InProcessHost
    return InProcessHost()


# -- probes ------------------------------------------------------------------------------------

class ModelCounter:
    """unet wrapper: counts model calls, rows of the batched input and time inside the model."""

    def __init__(self, sync):
        self.sync = sync
        self.reset()

    def reset(self):
        self.calls = self.rows = 0
        self.seconds = 0.0
        self.conds_per_call = []

    def __call__(self, apply_model, args):
        self.sync()
        t0 = time.perf_counter()
        out = apply_model(args["input"], args["timestep"], **args["c"])
        self.sync()
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        self.rows += int(args["input"].shape[0])
        self.conds_per_call.append(len(args["cond_or_uncond"]))
        return out


def _status_kib(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


class LiveTensorBytes:
    """CPU stand-in for torch.cuda.max_memory_allocated: peak bytes of tensor storages created
    during the run and alive at once (every ATen op output, freed when its storage dies).
    Untimed: the Python dispatch hook slows every op. Also records the process peak RSS."""

    what = "peak bytes of live torch tensors allocated during the run (dispatch hook), CPU"

    def __init__(self, torch):
        from torch.utils._python_dispatch import TorchDispatchMode
        from torch.utils._pytree import tree_leaves
        import weakref
        probe = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in tree_leaves(out):
                    if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                        st = t.untyped_storage()
                        key, n = st._cdata, st.nbytes()
                        if n and key not in probe.seen:
                            probe.seen[key] = n
                            probe.live += n
                            probe.peak = max(probe.peak, probe.live)
                            weakref.finalize(st, probe.free, key, n)
                return out
        self.mode_cls = Mode

    def free(self, key, n):
        if self.seen.pop(key, None) is not None:
            self.live -= n

    def __enter__(self):
        self.live = self.peak = 0
        self.seen = {}
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets the process's RSS high-water mark (VmHWM)
        self.mode = self.mode_cls()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)
        self.rss_peak = _status_kib("VmHWM") * 1024
        self.seen = {}  # stop accounting frees that come after the run
        return False


class CudaMemory:
    what = "torch.cuda.max_memory_allocated minus memory_allocated at the start of the run"

    def __init__(self, torch):
        self.torch = torch

    def __enter__(self):
        self.torch.cuda.synchronize()
        self.torch.cuda.reset_peak_memory_stats()
        self.base = self.torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc):
        self.torch.cuda.synchronize()
        self.rss_peak = self.torch.cuda.max_memory_allocated()
        self.peak = self.rss_peak - self.base
        return False


# -- one run -----------------------------------------------------------------------------------

class Bench:
    """The loaded model, conds and probes; runs one KSampler or DualLatentKSampler call."""

    def __init__(self, host, device="cpu", ckpt=None, steps=20, loaded=None):
        import torch
        self.host, self.torch, self.steps, self.device = host, torch, steps, device
        if loaded is None:
            loaded = host.load_checkpoint(ckpt) if ckpt else host.load_checkpoint()
        model, clip = loaded[0], loaded[1]
        sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
        self.counter = ModelCounter(sync)
        self.model = model.clone()
        self.model.set_model_unet_function_wrapper(self.counter)
        self.positive = host.encode(clip, PROMPT)
        self.safe = host.encode(clip, SAFE)
        self.negative = host.encode(clip, NEGATIVE)
        self.memory = CudaMemory(torch) if device == "cuda" else LiveTensorBytes(torch)
        self.sync = sync

    def latent(self, size, batch):
        return self.host.empty_latent(width=size, height=size, batch_size=batch)

    def inputs(self, size, batch, cfg):
        return dict(model=self.model, seed=SEED, steps=self.steps, cfg=cfg, sampler_name=SAMPLER,
                    scheduler=SCHEDULER, positive=self.positive, negative=self.negative,
                    latent_image=self.latent(size, batch), denoise=1.0)

    def run(self, node, size, batch, cfg, steps=None, memory=False, **extra):
        """One call, as the executor makes it (under inference_mode); returns its measurements."""
        kw = self.inputs(size, batch, cfg)
        if steps is not None:
            kw["steps"] = steps
        if node == "DualLatentKSampler":
            kw.update(safe_positive=self.safe, **extra)
        self.counter.reset()
        probe = self.memory if memory else contextlib.nullcontext()
        with self.torch.inference_mode(), probe:
            self.sync()
            t0, c0 = time.perf_counter(), time.process_time()
            out = self.host.call(node, **kw)
            self.sync()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        c = self.counter
        if out[0]["samples"].shape[0] != batch:
            raise RuntimeError(f"{node} returned batch {out[0]['samples'].shape[0]}, expected {batch}")
        res = dict(wall=wall, cpu=cpu, calls=c.calls, rows=c.rows, model_s=c.seconds,
                   conds_per_call=list(c.conds_per_call))
        if memory:
            res.update(work=self.memory.peak, total=self.memory.rss_peak)
        return res


# -- configurations and targets ---------------------------------------------------------------

CONFIG_SETS = ("all", "merge", "refresh")
REFRESHES = (2, 3, 4)


def refresh_label(r):
    return f"every_step tau=0 w=0.5 refresh={r}"


def dual_configs(which="all", refreshes=REFRESHES):
    """(label, node inputs). safety_weight 0 takes the host's KSampler path before the merge
    mode or threshold are read (nodes/dual_sampler.py), so it is one configuration, not four.
    "merge": w 0 and both merge modes at tau 0 and 0.4; "refresh": every_step tau 0 at refresh 1
    (the exact method) and `refreshes`; "all": both."""
    if which not in CONFIG_SETS:
        raise ValueError(f"configs must be one of {', '.join(CONFIG_SETS)}, got {which!r}")
    exact = ("every_step tau=0 w=0.5", dict(safety_weight=0.5, context_threshold=0.0, merge="every_step"))
    out = []
    if which in ("all", "merge"):
        out.append(("w=0 (any merge/tau)", dict(safety_weight=0.0, context_threshold=0.4, merge="every_step")))
        for merge in ("every_step", "at_end"):
            for tau in (0.0, 0.4):
                out.append((f"{merge} tau={tau:g} w=0.5",
                            dict(safety_weight=0.5, context_threshold=tau, merge=merge)))
    else:
        out.append(exact)
    if which in ("all", "refresh"):
        out += [(refresh_label(r), dict(exact[1], refresh=r)) for r in refreshes]
    return out


def target(extra, cfg, steps):
    """(bound, text): the ratio to KSampler the configuration must stay within."""
    n, w, tau, merge = steps, extra["safety_weight"], extra["context_threshold"], extra["merge"]
    if w == 0.0:
        return (0.97, 1.03), "1.00x+-3%"
    k = int(math.floor(tau * n + 0.5))
    if merge == "at_end":
        b = (2 * n - k) / n + 0.05
        return (0.0, b), f"<={b:.2f}x"
    # every_step: one extra cond per refreshed step after k (every step at refresh 1; steps
    # k, k + r, ... at refresh r). KSampler evaluates 2 conds per step at cfg != 1 and 1 at
    # cfg 1 (the host skips the negative): 3/2 at tau 0 as the issue states, 2/1 at cfg 1;
    # refresh 2 at tau 0: 1.25x and 1.5x.
    base = 1 if math.isclose(cfg, 1.0) else 2
    r = extra.get("refresh", 1)
    b = (n * base + -(-(n - k) // r)) / (n * base)
    return (0.0, b), f"<={b:.2f}x"


def verdict(bounds, value):
    lo, hi = bounds
    return "PASS" if lo <= value <= hi else "MISS"


def measure(bench, size, batch, cfg, label, extra, repeats, mem_steps):
    """One memory pair (untimed, `mem_steps` steps), then `repeats` interleaved timed pairs
    (KSampler, ours; the order alternates). Warm-up is done per group by the caller."""
    mem_a = bench.run("KSampler", size, batch, cfg, steps=mem_steps, memory=True)
    mem_b = bench.run("DualLatentKSampler", size, batch, cfg, steps=mem_steps, memory=True, **extra)
    a_runs, b_runs = [], []
    for i in range(repeats):
        # A B, then B A: whichever runs first in a pair gets no systematic advantage.
        first_a = i % 2 == 0
        if first_a:
            a_runs.append(bench.run("KSampler", size, batch, cfg))
        b_runs.append(bench.run("DualLatentKSampler", size, batch, cfg, **extra))
        if not first_a:
            a_runs.append(bench.run("KSampler", size, batch, cfg))
    med = statistics.median
    n = bench.steps
    bounds, ttext = target(extra, cfg, n)
    ratio = med([b["wall"] / a["wall"] for a, b in zip(a_runs, b_runs)])
    mem_total = mem_b["total"] / mem_a["total"]
    mem_work = mem_b["work"] / mem_a["work"] if mem_a["work"] > 0 else float("nan")
    b0, a0 = b_runs[-1], a_runs[-1]
    return dict(
        size=size, batch=batch, cfg=cfg, label=label, extra=extra, pairs=repeats,
        ks_s=med([a["wall"] for a in a_runs]), ours_s=med([b["wall"] for b in b_runs]),
        ratio=ratio, cpu_ratio=med([b["cpu"] / a["cpu"] for a, b in zip(a_runs, b_runs)]),
        target=ttext, verdict=verdict(bounds, ratio),
        ks_calls=a0["calls"] / n, ks_conds=a0["rows"] / (batch * n),
        calls=b0["calls"] / n, conds=b0["rows"] / (batch * n),
        ks_other_s=med([a["wall"] - a["model_s"] for a in a_runs]),
        other_s=med([b["wall"] - b["model_s"] for b in b_runs]),
        ks_work_mib=mem_a["work"] / 2**20, work_mib=mem_b["work"] / 2**20,
        ks_total_mib=mem_a["total"] / 2**20, total_mib=mem_b["total"] / 2**20,
        mem_total=mem_total, mem_work=mem_work,
        mem_verdict=verdict((0.0, 1.10), mem_total), work_verdict=verdict((0.0, 1.10), mem_work),
    )


def warm_up(bench, size, batch, cfg, configs, steps=2):
    """Loads the model and fills the host's caches; returns the KSampler seconds per step."""
    bench.run("KSampler", size, batch, cfg, steps=steps)
    for _label, extra in configs:
        bench.run("DualLatentKSampler", size, batch, cfg, steps=steps, **extra)
    r = bench.run("KSampler", size, batch, cfg, steps=steps)
    return r["wall"] / steps


def pairs_for(ks_step_s, steps, row_budget_s, max_repeats):
    """Interleaved pairs per row: as many as fit the row budget (a pair costs about 2.5 KSampler
    runs), at least 1 and at most max_repeats, so large sizes do not blow the run time."""
    est_pair = 2.5 * ks_step_s * steps
    return max(1, min(max_repeats, int(row_budget_s // est_pair)))


# -- report ------------------------------------------------------------------------------------

def fmt_table(rows):
    head = ("| size | batch | cfg | configuration | pairs | KSampler s | ours s | ratio (wall) | target | | "
            "ratio (cpu) | calls/step KS -> ours | conds/step KS -> ours | non-model s KS / ours | "
            "working MiB KS / ours | working | | peak total MiB KS / ours | total | |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        lines.append(
            f"| {r['size']} | {r['batch']} | {r['cfg']:g} | {r['label']} | {r['pairs']} | {r['ks_s']:.2f} | "
            f"{r['ours_s']:.2f} | {r['ratio']:.3f}x | {r['target']} | {r['verdict']} | {r['cpu_ratio']:.3f}x | "
            f"{r['ks_calls']:.2f} -> {r['calls']:.2f} | {r['ks_conds']:.2f} -> {r['conds']:.2f} | "
            f"{r['ks_other_s']:.3f} / {r['other_s']:.3f} | {r['ks_work_mib']:.1f} / {r['work_mib']:.1f} | "
            f"{r['mem_work']:.2f}x | {r['work_verdict']} | {r['ks_total_mib']:.0f} / {r['total_mib']:.0f} | "
            f"{r['mem_total']:.3f}x | {r['mem_verdict']} |")
    return "\n".join(lines)


def scaling_table(rows):
    """Ratio by batch and resolution for the w=0.5 configurations."""
    keys = sorted({(r["size"], r["batch"]) for r in rows})
    labels = [lab for lab in dict.fromkeys(r["label"] for r in rows) if "w=0.5" in lab]
    cfgs = sorted({r["cfg"] for r in rows})
    lines = ["| configuration | cfg | " + " | ".join(f"{s}px b{b}" for s, b in keys) + " |",
             "|---|---|" + "---|" * len(keys)]
    for lab in labels:
        for cfg in cfgs:
            cells = []
            for s, b in keys:
                hit = [r for r in rows if r["label"] == lab and r["cfg"] == cfg and (r["size"], r["batch"]) == (s, b)]
                cells.append(f"{hit[0]['ratio']:.2f}x" if hit else "-")
            lines.append(f"| {lab} | {cfg:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows, steps):
    """One line: the ratio range per kind of configuration against its target, and the counts."""
    n = steps

    def span(pred):
        vals = [r["ratio"] for r in rows if pred(r)]
        return f"{min(vals):.2f}-{max(vals):.2f}x" if vals else "n/a"

    def kind(merge, tau, cfg1):
        return lambda r: (r["extra"]["safety_weight"] > 0 and r["extra"]["merge"] == merge
                          and r["extra"].get("refresh", 1) == 1 and r["extra"]["context_threshold"] == tau and math.isclose(r["cfg"], 1.0) == cfg1)

    parts = []
    for merge, tau, cfg1 in (("every_step", 0.0, False), ("every_step", 0.4, False), ("every_step", 0.0, True),
                             ("every_step", 0.4, True), ("at_end", 0.0, False), ("at_end", 0.4, False),
                             ("at_end", 0.0, True), ("at_end", 0.4, True)):
        if any(kind(merge, tau, cfg1)(r) for r in rows):
            ex = dict(safety_weight=0.5, context_threshold=tau, merge=merge)
            parts.append(f"{merge} tau{tau:g} cfg{'1' if cfg1 else '>1'} {span(kind(merge, tau, cfg1))} "
                         f"({target(ex, 1.0 if cfg1 else 7.0, n)[1]})")
    parts.append(f"w0 {span(lambda r: r['extra']['safety_weight'] == 0)} (1.00x+-3%)")
    count = lambda key: sum(r[key] == "PASS" for r in rows)
    return ("SUMMARY wall ratio to KSampler: " + "; ".join(parts) +
            f"; memory working max {max(r['mem_work'] for r in rows):.2f}x, total max "
            f"{max(r['mem_total'] for r in rows):.3f}x (<=1.10x); PASS: speed {count('verdict')}/{len(rows)}, "
            f"memory working {count('work_verdict')}/{len(rows)}, memory total {count('mem_verdict')}/{len(rows)}")


def refresh_summary(rows, steps):
    """The last line: every_step tau 0 by refresh, per cfg kind, against its count floor, and how far
    the exact method (refresh 1) sits above its floor at batch 4."""
    def picks(r_, cfg1, batch=None):
        return [r for r in rows if r["extra"]["safety_weight"] > 0 and r["extra"]["merge"] == "every_step"
                and r["extra"]["context_threshold"] == 0.0 and r["extra"].get("refresh", 1) == r_
                and math.isclose(r["cfg"], 1.0) == cfg1 and (batch is None or r["batch"] == batch)]
    parts = []
    for cfg1 in (False, True):
        cells = []
        for r_ in (1,) + REFRESHES:
            hit = picks(r_, cfg1)
            if hit:
                floor = target(hit[0]["extra"], 1.0 if cfg1 else 7.0, steps)[0][1]
                vals = [h["ratio"] for h in hit]
                cells.append(f"r{r_} {min(vals):.2f}-{max(vals):.2f}x (floor {floor:.2f}x)")
        if cells:
            parts.append(f"cfg {'1' if cfg1 else '>1'}: " + ", ".join(cells))
    over = []
    for cfg1 in (False, True):
        for h in picks(1, cfg1, batch=4):
            floor = target(h["extra"], h["cfg"], steps)[0][1]
            over.append(f"{h['size']}px cfg{h['cfg']:g} {100 * (h['ratio'] / floor - 1):+.1f}% "
                        f"(cpu {100 * (h['cpu_ratio'] / floor - 1):+.1f}%)")
    if over:
        parts.append("exact (refresh 1) batch 4 vs its floor: " + ", ".join(over))
    return "REFRESH SUMMARY wall ratio to KSampler, every_step tau 0 w 0.5: " + "; ".join(parts)


def header(args, bench, elapsed, load):
    torch = bench.torch
    dev = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    return (f"Device: {dev}; torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s); checkpoint "
            f"{args.ckpt or 'tiny-sd15-random.safetensors'}; {SAMPLER}/{SCHEDULER}, {bench.steps} steps, seed "
            f"{SEED}, one shared model clone with a counting unet wrapper. Per row: one warm-up per group, then "
            f"`pairs` interleaved (KSampler, ours) pairs; times are medians; ratio = median of the per-pair "
            f"ratios (wall clock; cpu = process CPU time, the load-independent cross-check). Memory from one "
            f"extra untimed pair of {args.mem_steps} steps: working = {bench.memory.what}; total = "
            f"{'process peak RSS (VmHWM, reset per run)' if args.device == 'cpu' else 'max_memory_allocated'}. "
            f"Targets: w=0 1.00x+-3%; every_step (k*c + (N-k)*(c+1)) / (N*c) with c = conds KSampler "
            f"evaluates (2, or 1 at cfg 1): 1.50x at tau 0; with refresh r only every r-th step after k pays "
            f"the extra cond (refresh 2 at tau 0: 1.25x, cfg 1 1.50x); at_end (2N-k)/N + 5%; memory <= 1.10x. "
            f"Load average during the run {load}; run took {elapsed / 60:.1f} min.")


# -- profile -----------------------------------------------------------------------------------

PROFILE_KEYS = ("apply_model", "calc_cond_batch", "sampling_function", "cfg_function", "predict_noise",
                "dual_cfg", "weighted_merge", "check_finite", "prepare_noise", "load_models_gpu",
                "process_latent_out", "branch_estimates", "prepare_sampling", "cleanup_models", "sample_dual",
                "common_ksampler", "clone")


def profile(bench, size, batch, cfg, which="all", out=sys.stdout):
    """cProfile one KSampler run and one run of each merge mode (w 0.5, tau 0 and 0.4)."""
    cases = [("KSampler", {})] + [(lab, ex) for lab, ex in dual_configs(which)
                                  if ex["safety_weight"] > 0 and ex.get("refresh", 1) in (1, 2)]
    for label, extra in cases:
        node = "KSampler" if not extra else "DualLatentKSampler"
        bench.run(node, size, batch, cfg, **extra)  # warm
        prof = cProfile.Profile()
        prof.enable()
        r = bench.run(node, size, batch, cfg, **extra)
        prof.disable()
        st = pstats.Stats(prof)
        print(f"\n### profile {label}: {size}px batch {batch} cfg {cfg:g}: wall {r['wall']:.3f} s, "
              f"model {r['model_s']:.3f} s ({r['calls']} calls), other {r['wall'] - r['model_s']:.3f} s", file=out)
        print("| function | calls | cumulative s | own s |\n|---|---|---|---|", file=out)
        for (fname, line, func), (cc, nc, tt, ct, _callers) in sorted(st.stats.items(), key=lambda kv: -kv[1][3]):
            if func in PROFILE_KEYS and ("comfy" in fname or "nodes" in fname or "safety" in fname):
                short = "/".join(Path(fname).parts[-2:])
                print(f"| {short}:{line} {func} | {nc} | {ct:.3f} | {tt:.3f} |", file=out)
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
        body = buf.getvalue()
        print("top own time:\n```\n" + body[body.find("ncalls"):].rstrip() + "\n```", file=out)


# -- main --------------------------------------------------------------------------------------

def grid(args):
    sizes = [64] if args.quick else args.sizes
    batches = [1] if args.quick else args.batches
    return [(s, b, c) for s in sizes for b in batches for c in args.cfgs]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="64px, batch 1 only, 1 pair per row")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--ckpt", default=None, help="checkpoint name in the host's models/checkpoints")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--cfgs", type=float, nargs="+", default=[1.0, 7.0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--configs", choices=CONFIG_SETS, default="all",
                    help="merge: w 0 and both merge modes; refresh: every_step tau 0 at refresh 1 (exact) and "
                         "--refreshes; all (default): both")
    ap.add_argument("--refreshes", type=int, nargs="+", default=list(REFRESHES), help="refresh values > 1")
    ap.add_argument("--repeats", type=int, default=None, help="most interleaved pairs per row (default 3, quick 1)")
    ap.add_argument("--row-budget", type=float, default=15.0,
                    help="seconds of timed pairs per row; fewer pairs for slow sizes (at least 1)")
    ap.add_argument("--mem-steps", type=int, default=3, help="steps of the untimed memory pair")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's choice; the make target uses 1 on a shared machine)")
    ap.add_argument("--out", default=None, help="also write the report (markdown) here")
    ap.add_argument("--profile", action="store_true", help="cProfile KSampler vs both merge modes and exit")
    args = ap.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    if args.device == "cpu" and not os.path.exists("/proc/self/clear_refs"):
        ap.error("peak RSS on CPU needs Linux /proc/self/clear_refs")
    if args.mem_steps < 1 or args.steps < 1:
        ap.error("--steps and --mem-steps must be >= 1")

    t0 = time.time()
    host = load_host(args.device)
    import torch
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)  # tqdm output is noise here
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device")
    bench = Bench(host, args.device, args.ckpt, args.steps)

    if args.profile:
        profile(bench, args.sizes[0], args.batches[0], args.cfgs[-1], args.configs)
        return 0

    rows, configs = [], dual_configs(args.configs, tuple(args.refreshes))
    load = [os.getloadavg()[0]]
    for size, batch, cfg in grid(args):
        ks_step = warm_up(bench, size, batch, cfg, configs)
        pairs = pairs_for(ks_step, args.steps, args.row_budget, args.repeats)
        for label, extra in configs:
            r = measure(bench, size, batch, cfg, label, extra, pairs, args.mem_steps)
            rows.append(r)
            print(f"[bench] {size}px b{batch} cfg{cfg:g} {label}: {r['ratio']:.3f}x {r['verdict']} "
                  f"(cpu {r['cpu_ratio']:.3f}x; {r['ks_s']:.2f}s vs {r['ours_s']:.2f}s, {pairs} pairs), "
                  f"memory working {r['mem_work']:.2f}x total {r['mem_total']:.3f}x", flush=True)
        load.append(os.getloadavg()[0])
    report = "\n\n".join([
        "# Speed and memory: DualLatentKSampler vs the host's KSampler",
        header(args, bench, time.time() - t0, f"{min(load):.1f}-{max(load):.1f}"),
        fmt_table(rows),
        "## Wall ratio by batch size and resolution",
        scaling_table(rows),
        summary(rows, args.steps),
        refresh_summary(rows, args.steps),
    ]) + "\n"
    print("\n" + report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
