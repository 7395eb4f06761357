"""pyproject.toml as the Comfy Registry and the host read it: the host's own `comfy_config`
parser, with every warning turned into an error; its version is the one the pack reports."""
import json
import re
import subprocess
import sys
import tomllib

from harness import PACK_DIR, PACK_LINK_NAME, comfyui_path

PARSE = r"""
import json, logging, sys, warnings
warnings.simplefilter("error")            # any warning fails the parse
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger().addHandler(Keep(level=logging.WARNING))
from comfy_config import config_parser
cfg = config_parser.extract_node_configuration(sys.argv[1])
print(json.dumps({"config": cfg.model_dump(by_alias=False), "log": records}))
"""


def parse_with_host(pack_dir):
    res = subprocess.run([sys.executable, "-c", PARSE, str(pack_dir)], cwd=comfyui_path(), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stderr.strip() == "", res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def pack_version():
    """__version__ as the pack's __init__.py states it (read, not imported: importing the pack
    outside the host would import the host's modules)."""
    text = (PACK_DIR / "__init__.py").read_text()
    m = re.search(r'^__version__\s*=\s*["\']([^"\']+)["\']', text, re.M)
    assert m, "the pack's __init__.py sets no __version__"
    return m.group(1)


def test_host_parser_reads_pyproject_without_warning():
    out = parse_with_host(PACK_DIR)
    assert out["log"] == []
    project, comfy = out["config"]["project"], out["config"]["tool_comfy"]
    assert project["name"] == PACK_LINK_NAME
    assert project["version"] == pack_version()
    assert project["description"] and len(project["description"]) <= 300
    assert project["license"]["file"] == "LICENSE" and (PACK_DIR / "LICENSE").is_file()
    assert re.match(r"^https://[\w.-]+/\S+$", project["urls"]["repository"])
    assert comfy["publisher_id"] and re.fullmatch(r"[a-z0-9-]+", comfy["publisher_id"])
    assert comfy["display_name"] == "Safety Dual Latent"
    # the pack needs nothing beyond the host: no dependency may pull a torch of its own
    assert not any(d.lower().startswith("torch") for d in project["dependencies"])


def test_pyproject_is_plain_toml_with_registry_fields():
    """The fields the registry's publish step reads, checked with the standard TOML parser too."""
    data = tomllib.loads((PACK_DIR / "pyproject.toml").read_text())
    assert data["project"]["version"] == pack_version()
    # a registry version must be semantic (x.y.z)
    assert re.fullmatch(r"\d+\.\d+\.\d+", data["project"]["version"])
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,98}[a-z0-9]", data["project"]["name"])
    assert set(data["tool"]["comfy"]) >= {"PublisherId", "DisplayName", "Icon", "includes"}


def test_requirements_leave_torch_to_the_host():
    lines = [ln.split("#")[0].strip() for ln in (PACK_DIR / "requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln]
    assert not any(re.match(r"torch\b|torchvision\b|torchaudio\b", r, re.I) for r in reqs), reqs
