"""`python -m bench.efficacy [--world tiny|concept] [--small] [--out DIR]` (make bench-efficacy).

--world concept (the default) runs the concept world's frozen protocol (protocol_bench.py,
its own options); --world tiny the plumbing benchmark below on the random test checkpoint.

Loads the real host in-process, runs every method on the world, checks the world's
validity gates on the unprotected samples (refuses to report when they fail), and writes
table.md, tradeoff.png and grid.png.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "bench" / "results" / "efficacy"


def load_host():
    sys.path.insert(0, str(ROOT / "scripts"))
    from comfy_host import InProcessHost  # the foundation's in-process host
    return InProcessHost()


def make_world(name, host, seeds=None, log=print, checkpoint=None):
    from . import worlds
    if name == "tiny":
        return worlds.tiny_world(n_prompts=3, seeds=tuple(seeds or (0, 1)), steps=8)
    raise ValueError(f"unknown world {name!r}")


def write(world, runs, rows, validity, elapsed, out, log=print):
    from . import report
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report.plot(rows, out / "tradeoff.png", title=f"Trade-off on {world.name}")
    picks = [r["key"] for r in rows if r["family"] != "ours"
             or (r["method"].threshold == 0.2 and r["method"].weight in (0.5, 1.0))]
    report.grid(runs, rows, world.prompts, len(world.prompts), out / "grid.png", picks=picks)
    gated = next((r for r in runs.values() if "gate" in r), None)
    gate = (gated["gate"], gated["gate_threshold"]) if gated else None
    text = report.markdown(world, rows, validity, elapsed, "tradeoff.png", "grid.png", gate=gate)
    (out / "table.md").write_text(text)
    log(text)
    return out / "table.md"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--world", choices=("tiny", "concept"), default="concept")
    ap.add_argument("--small", action="store_true", help="a few methods only (quick check)")
    ap.add_argument("--seeds", default=None, help="comma-separated seeds (default: the world's)")
    ap.add_argument("--steps", type=int, default=None, help="sampler steps (default: the world's)")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--checkpoint", default=None,
                    help="concept world: use this checkpoint name as is (no training; e.g. an untrained one)")
    ap.add_argument("--allow-invalid", action="store_true",
                    help="report even if the world's validity gates fail (marked in the table)")
    argv = sys.argv[1:] if argv is None else list(argv)
    if "tiny" not in argv:   # the concept world runs its frozen protocol (protocol_bench.py)
        from .protocol_bench import main as protocol_main
        return protocol_main([x for x in argv if x not in ("--world", "concept")])
    a = ap.parse_args(argv)
    t0 = time.time()
    host = load_host()
    from . import harness
    seeds = tuple(int(s) for s in a.seeds.split(",")) if a.seeds else None
    world = make_world(a.world, host, seeds, checkpoint=a.checkpoint)
    if a.steps:
        world.steps = a.steps
    methods = harness.small_methods() if a.small else harness.full_methods()
    out = Path(a.out)

    def progress(runs, done):   # a partial table after each method, in case the run is cut short
        out.mkdir(parents=True, exist_ok=True)
        from . import report
        rows = harness.rows_for(world, runs, done)
        (out / "table.partial.md").write_text(f"Partial: {len(done)}/{len(methods)} methods, "
                                              f"{time.time() - t0:.0f} s\n\n" + report.table(rows) + "\n")

    runs, rows, validity, elapsed = harness.run_all(host, world, methods, progress=progress)
    (out / "table.partial.md").unlink(missing_ok=True)
    if world.gates is not None:
        ok, text = world.gates(world, validity)
        print(text)
        if not ok:
            if not a.allow_invalid:
                print("[bench] the world's validity gates failed: refusing to report", file=sys.stderr)
                return 2
            world.notes.append("VALIDITY GATES FAILED: " + text)
    path = write(world, runs, rows, validity, elapsed, a.out)
    print(f"[bench] wrote {path} in {time.time() - t0:.0f} s (evaluation {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
