"""Small worker jobs the GIMP tests run themselves, to know what the worker says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

# What a GIMP host tells the worker (gpt_image_edit_host.Worker.environment): where its
# user changes the settings, for the worker's sentences.
GIMP_SETTINGS_PLACE = {"GPT_IMAGE_EDIT_SETTINGS_PLACE": "Filters > AI > GPT Image Settings..."}


def worker_failure_sentence(env: dict, folder: Path, prompt: str, variants: int = 1) -> str:
    """The sentence the worker's own failure manifest holds for a small job run in `env`, as
    a GIMP host that shows no live previews (a script's call, GIMP 2.10) starts it: asking
    for none, so the answer is not streamed."""
    folder.mkdir()
    Image.new("RGB", (64, 48), "gray").save(folder / "source.png")
    (folder / "job.json").write_text(json.dumps({
        "protocol": 1, "prompt": prompt, "model": "gpt-image-2", "size": "auto",
        "quality": "high", "variants": variants,
        "layer": {"width": 64, "height": 48, "offset_x": 0, "offset_y": 0},
        "source": {"path": "source.png", "x": 0, "y": 0}, "selection": None,
        "output_dir": "results", "partial_images": 0}))
    subprocess.run([sys.executable, "-m", "gpt_image_edit", "job", str(folder / "job.json")],
                   env={**env, **GIMP_SETTINGS_PLACE}, stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=300)
    manifest = json.loads((folder / "results" / "manifest.json").read_text())
    assert manifest["ok"] is False, manifest
    return manifest["error"]["message"]
