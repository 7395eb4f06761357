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
    if FOLDER_TYPE not in folder_paths.folder_names_and_paths:
        folder_paths.folder_names_and_paths[FOLDER_TYPE] = ([str(PACK_PRESETS), str(user_preset_dir())], {".json"})
    dirs = list(folder_paths.folder_names_and_paths[FOLDER_TYPE][0])
    extra = os.environ.get("COMFYUI_SAFETY_CONTEXTS", "")
    dirs += [d for d in extra.split(os.pathsep) if d]
    return dirs


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
