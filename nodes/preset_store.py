"""Where presets live for the host: the pack's folder, the user's folder, extra paths.

Registered as the host folder type "safety_contexts", so users can also add folders in
extra_model_paths.yaml. The user folder (<ComfyUI>/user/safety_contexts by default)
survives pack updates.
"""
import logging
import os
from pathlib import Path

import folder_paths

from .presets import load_presets

PACK_PRESETS = Path(__file__).resolve().parents[1] / "safety_contexts"
FOLDER_TYPE = "safety_contexts"


def user_preset_dir():
    return Path(folder_paths.get_user_directory()) / FOLDER_TYPE


def preset_dirs():
    """Pack folder, user folder, then folders from extra_model_paths.yaml, then the env var."""
    entry = folder_paths.folder_names_and_paths.get(FOLDER_TYPE)
    # The host may have created the entry from extra_model_paths.yaml before loading us.
    configured = list(entry[0]) if entry else []
    ours = [str(PACK_PRESETS), str(user_preset_dir())]
    dirs = ours + [d for d in configured if d not in ours]
    folder_paths.folder_names_and_paths[FOLDER_TYPE] = (dirs, {".json"})
    extra = os.environ.get("COMFYUI_SAFETY_CONTEXTS", "")
    return dirs + [d for d in extra.split(os.pathsep) if d]


_reported = set()


def available_presets():
    """Presets by name; each malformed file is logged once, by path and line."""
    presets, errors = load_presets(preset_dirs())
    for e in errors:
        if e not in _reported:
            _reported.add(e)
            logging.warning("[safety presets] skipped a malformed preset: %s", e)
    return presets


def preset_names():
    names = sorted(available_presets())
    return names or ["(no presets found)"]


def get_preset(name):
    presets = available_presets()
    if name not in presets:
        raise ValueError(f"preset {name!r} not found; available: {', '.join(sorted(presets)) or 'none'} "
                         f"(folders: {', '.join(preset_dirs())})")
    return presets[name]
