"""A stand-in for token.place's utils/llm/model_manager.py, written for the
gpuhost tests (standard library only, no token.place code).

It follows the rules token.place's own code applies to the model's place,
as read in its config.py, utils/path_handling.py and ModelManager:

* paths.models_dir defaults to <app data>/models, where <app data> is
  %APPDATA%\\token.place on Windows and ~/.local/share/token.place on
  Linux (the directories are created);
* the JSON file named by TOKEN_PLACE_CONFIG is merged over the defaults
  after that, so its {"paths": {"models_dir": ...}} wins;
* ModelManager() only records model_path = models_dir/<file name> and
  the download URL; it loads nothing.

The tests use it to see what gpuhost's `model` check and data.dir do; the
file name and URL below are the stand-in's own."""
import json
import os
import pathlib
import platform

FILE_NAME = "stand-in-model.Q4_K_M.gguf"
URL = "https://example.invalid/models/" + FILE_NAME


def _app_data_dir():
    if platform.system().lower() == "windows":
        base = os.environ.get("APPDATA") or str(pathlib.Path.home() / "AppData" / "Roaming")
        return pathlib.Path(base) / "token.place"
    return pathlib.Path.home() / ".local" / "share" / "token.place"


def _config():
    cfg = {"paths": {"models_dir": str(_app_data_dir() / "models")}}
    path = os.environ.get("TOKEN_PLACE_CONFIG")
    if path:
        try:
            with open(path) as f:
                user = json.load(f)
        except (OSError, ValueError):
            user = {}
        for k, v in user.items():
            if isinstance(v, dict) and isinstance(cfg.get(k), dict):
                cfg[k].update(v)
            else:
                cfg[k] = v
    return cfg


class ModelManager:
    def __init__(self):
        cfg = _config()
        self.models_dir = cfg["paths"]["models_dir"]
        self.file_name = FILE_NAME
        self.url = URL
        self.model_path = os.path.join(self.models_dir, self.file_name)
