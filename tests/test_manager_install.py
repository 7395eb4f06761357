"""ComfyUI-Manager's install path, into a clean host.

Manager installs a pack by `git clone` (or the registry's zip of the same files) into
`custom_nodes/<name>`, then `pip install`s each line of `requirements.txt`, then runs
`install.py` if there is one; the host then loads it at start. Here: a copy of the host's
own tree without any custom node, the pack's tracked files only (what a clone brings, so a
file that works only because it sits untracked in this checkout fails here), the same steps,
and the real server started from that tree.
"""
import re
import shutil
import subprocess
import sys

import pytest

from harness import PACK_DIR, PACK_LINK_NAME, HostServer, comfyui_path

OUR_NODES = ["SafetyContextEncode", "DualLatentKSampler", "DualLatentKSamplerAdvanced", "SafetyDualGuider",
             "LatentWeightedMerge"]
# Left behind: node packs, models, user data and outputs of the working host.
NOT_COPIED = {"custom_nodes", "models", "user", "output", "input", "temp", ".git"}


def tracked_files():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=PACK_DIR, capture_output=True, check=True).stdout
    return [p for p in out.decode().split("\0") if p]


@pytest.fixture(scope="module")
def clean_host(tmp_path_factory):
    src = comfyui_path()
    root = tmp_path_factory.mktemp("clean-host") / "ComfyUI"
    root.mkdir()
    for item in src.iterdir():
        if item.name in NOT_COPIED or item.name == "__pycache__":
            continue
        if item.is_dir():
            shutil.copytree(item, root / item.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, root / item.name)
    (root / "custom_nodes").mkdir()
    (root / "models" / "checkpoints").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def installed(clean_host):
    """The pack installed the way Manager does it; returns its folder."""
    dest = clean_host / "custom_nodes" / PACK_LINK_NAME
    files = tracked_files()
    for rel in files:
        src = PACK_DIR / rel
        if not src.exists():  # tracked but deleted in this working tree: a clone would have it
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    assert (dest / "__init__.py").is_file()
    return dest


def test_clone_brings_what_the_pack_needs(installed):
    for needed in ["__init__.py", "pyproject.toml", "requirements.txt", "LICENSE", "README.md",
                   "nodes/extension.py", "safety_contexts/sexual.json", "workflows/safe_txt2img.json"]:
        assert (installed / needed).is_file(), f"{needed} is not tracked in git"
    assert not (installed / ".build").exists()


def test_requirements_install_step(installed):
    """Manager's pip step, line by line, as a dry run against the host's venv: nothing to add,
    and in particular nothing that would replace the host's torch."""
    lines = [ln.strip() for ln in (installed / "requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln and not ln.startswith("#")]
    res = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--disable-pip-version-check",
                          "-r", str(installed / "requirements.txt")], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    would = [ln for ln in res.stdout.splitlines() if ln.startswith("Would install")]
    assert not any(re.search(r"\btorch(vision|audio)?-", ln) for ln in would), would
    if not reqs:
        assert would == [], would


def test_install_script_if_any(installed):
    script = installed / "install.py"
    if not script.exists():
        pytest.skip("the pack has no install.py (Manager skips this step too)")
    res = subprocess.run([sys.executable, str(script)], cwd=installed, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]


def test_clean_host_starts_and_lists_our_nodes(clean_host, installed, tmp_path):
    srv = HostServer(tmp_path / "out", root=clean_host)
    try:
        info = srv.get("/object_info", timeout=120)
        log = srv.log()
    finally:
        srv.stop()
    for node in OUR_NODES:
        assert node in info, f"{node} missing from the clean host's /object_info"
        assert info[node]["category"] == "safety"
        assert info[node]["python_module"] == f"custom_nodes.{PACK_LINK_NAME}"
    presets = info["SafetyContextEncode"]["input"]["required"]["preset"][1]["options"]
    assert {"sexual", "violence", "all"} <= set(presets)
    ours = [ln for ln in log.splitlines() if PACK_LINK_NAME in ln]
    # the host loaded this copy (listed in its import times), and nothing about it failed
    assert any(ln.strip().endswith(str(installed)) and "seconds:" in ln for ln in ours), log[-3000:]
    assert not any("IMPORT FAILED" in ln or "Cannot import" in ln for ln in ours), ours
    assert "Unable to parse pyproject.toml" not in log
    # no other pack came along: the clean host has ours alone
    assert sorted(p.name for p in (clean_host / "custom_nodes").iterdir()) == [PACK_LINK_NAME]
