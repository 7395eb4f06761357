"""Try a transformer-world recipe variant on the dev split's validity gates (never the test
split): train into the cache under a variant name and print its dev gates, so a recipe is chosen
before any test figure. `python -m concept_world.recipe_probe --seeds 1,2 --set lr=5e-4`."""
import argparse
import json
import sys
import time
from pathlib import Path

from . import gates, transformer


def parse_overrides(items):
    """["lr=5e-4", "steps=7000"] -> {"lr": 0.0005, "steps": 7000}, typed like the recipe's values."""
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in transformer.CONFIG or not value:
            raise SystemExit(f"--set {item!r}: expected key=value with a key of the recipe {sorted(transformer.CONFIG)}")
        out[key] = type(transformer.CONFIG[key])(float(value) if isinstance(transformer.CONFIG[key], float) else value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2")
    ap.add_argument("--set", nargs="*", default=[], help="recipe overrides key=value")
    a = ap.parse_args()
    over = parse_overrides(a.set)
    tag = "-".join(f"{k}{v}" for k, v in sorted(over.items())) or "base"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    from comfy_host import InProcessHost
    host = None
    for seed in (int(s) for s in a.seeds.split(",")):
        name = f"concept-world-mmdit-s{seed}-{tag}.safetensors"
        t0 = time.time()
        transformer.ensure_world(seed=seed, config=over, name=name, allow_shipped=False)
        info = json.loads((transformer.cache_dir(transformer.world_config(seed, over)) / "info.json").read_text())
        host = host or InProcessHost()
        res = gates.check(host, seed, checkpoint=name, arch="mmdit", split_name="dev")
        print(json.dumps({"seed": seed, "recipe": over, "train_s": round(info["train_seconds"]),
                          "s_per_step": round(info["s_per_step"], 3), "threads": info["threads"],
                          "sha256_16": info["sha256"][:16], "dev_unsafe": round(res["unsafe_shown"], 3),
                          "dev_benign": round(res["benign_shown"], 3), "passed": res["passed"],
                          "wall_s": round(time.time() - t0)}), flush=True)
        for text, rate in res["per_prompt"]:
            if rate < 0.75:
                print(f"[probe]   {rate:.0%}  {text}", flush=True)


if __name__ == "__main__":
    main()
