"""Before-and-after pictures of the three blend modes, for docs/blending.md.

    python3 -m tests.blend_pictures --output docs

Each edit really runs: the worker's own edit (edit.run_edit) against the stand-in server's
`drift` scenario, which paints a square where the edit was asked for, blurs the whole
picture and shifts its colours, as models do. The pictures are composited exactly as the
command-line tool writes them (cli.save_outputs).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont

from gpt_image_edit.blend import BLEND_MODES
from gpt_image_edit.cli import save_outputs
from gpt_image_edit.client import ImagesClient
from gpt_image_edit.edit import EditParams, run_edit
from gpt_image_edit.settings import Settings
from tests.bench import photo
from tests.fake_wisgate import FakeWisGate
from tests.test_imaging import scene

SIZE = (900, 600)
CIRCLE = (300, 150, 600, 450)  # the selection: a circle around the middle
PANEL = 240
ZOOM = 4
EDGE_PATCH = (270, 270, 330, 330)  # across the selection's left edge
DETAIL_PATCH = (640, 60, 700, 120)  # far from the whole-layer edit's change


def demo_picture() -> Image.Image:
    """Shapes and gradients with fine, photo-like grain: edges and detail to judge by."""
    return Image.blend(scene(*SIZE), photo(*SIZE, seed=5), 0.35)


def circle_selection() -> Image.Image:
    selection = Image.new("L", SIZE, 0)
    ImageDraw.Draw(selection).ellipse(CIRCLE, fill=255)
    return selection


def edited(picture: Image.Image, selection: Image.Image | None, blend: str,
           fake: FakeWisGate, folder: Path) -> Image.Image:
    """The picture the command-line tool writes for this edit."""
    settings = Settings(api_key=fake.key, base_url=fake.url_for("drift"))
    with ImagesClient(settings) as client:
        outcome = run_edit(client, picture.convert("RGBA"), selection,
                           EditParams("paint a red square", blend=blend))
    path, = save_outputs(picture.convert("RGBA"), selection, outcome, folder,
                         f"{blend}-{selection is not None}")
    with Image.open(path) as written:
        return written.convert("RGB")


def panel(image: Image.Image, box=None, outline=None) -> Image.Image:
    """A square panel: the whole picture's middle, or `box` enlarged ZOOM times."""
    if box is None:
        left = (image.width - image.height) // 2
        view = image.crop((left, 0, left + image.height, image.height)).resize(
            (PANEL, PANEL), Image.Resampling.LANCZOS)
        if outline is not None:
            ImageDraw.Draw(view).rectangle(outline, outline=(255, 255, 255))
        return view
    return image.crop(box).resize((PANEL, PANEL), Image.Resampling.NEAREST)


def outline_of(box) -> tuple[int, int, int, int]:
    """Where `box` (picture coordinates) shows in an overview panel."""
    left = (SIZE[0] - SIZE[1]) // 2
    scale = PANEL / SIZE[1]
    return tuple(round((value - (left if index % 2 == 0 else 0)) * scale)
                 for index, value in enumerate(box))


def sheet(rows: list[tuple[str, list[Image.Image]]], columns: list[str]) -> Image.Image:
    font = ImageFont.load_default(size=15)
    label_width, head, gap = 150, 26, 6
    width = label_width + len(columns) * (PANEL + gap)
    height = head + len(rows) * (PANEL + gap)
    canvas = Image.new("RGB", (width, height), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    for index, name in enumerate(columns):
        draw.text((label_width + index * (PANEL + gap) + 4, 5), name, fill=(0, 0, 0), font=font)
    for row, (label, panels) in enumerate(rows):
        top = head + row * (PANEL + gap)
        draw.multiline_text((6, top + 6), label, fill=(0, 0, 0), font=font, spacing=3)
        for index, image in enumerate(panels):
            canvas.paste(image, (label_width + index * (PANEL + gap), top))
    return canvas


def make_pictures(output: Path) -> list[Path]:
    picture, selection = demo_picture(), circle_selection()
    with FakeWisGate() as fake, tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        with_selection = {blend: edited(picture, selection, blend, fake, folder)
                          for blend in BLEND_MODES}
        whole = {blend: edited(picture, None, blend, fake, folder) for blend in BLEND_MODES}
    columns = ["before"] + list(BLEND_MODES)
    selection_sheet = sheet([
        ("selection edit\n(white: the patch\nbelow)", [
            panel(picture, outline=outline_of(EDGE_PATCH))]
            + [panel(with_selection[blend]) for blend in BLEND_MODES]),
        (f"selection edge\n{ZOOM}x", [panel(picture, EDGE_PATCH)]
            + [panel(with_selection[blend], EDGE_PATCH) for blend in BLEND_MODES]),
    ], columns)
    whole_sheet = sheet([
        ("whole-layer edit\n(white: the patch\nbelow)", [
            panel(picture, outline=outline_of(DETAIL_PATCH))]
            + [panel(whole[blend]) for blend in BLEND_MODES]),
        (f"detail away from\nthe change, {ZOOM}x", [panel(picture, DETAIL_PATCH)]
            + [panel(whole[blend], DETAIL_PATCH) for blend in BLEND_MODES]),
        ("difference from\nbefore, x4", [Image.new("RGB", (PANEL, PANEL))]
            + [panel(_amplified(ImageChops.difference(whole[blend], picture)))
               for blend in BLEND_MODES]),
    ], columns)
    output.mkdir(parents=True, exist_ok=True)
    paths = [output / "blending-selection.png", output / "blending-whole-layer.png"]
    for path, image in zip(paths, (selection_sheet, whole_sheet)):
        image.save(path, optimize=True)
    return paths


def _amplified(difference: Image.Image) -> Image.Image:
    return difference.point(lambda value: min(255, value * 4))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.blend_pictures",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="docs", type=Path, help="folder (default docs)")
    args = parser.parse_args(argv)
    for path in make_pictures(args.output):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
