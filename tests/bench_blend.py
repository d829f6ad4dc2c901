"""How long blending takes on a 24 MP layer: `python3 -m tests.bench_blend [--repeat N]`.

Times blend.blend_results alone (the edit's upload, wait and file writing are the main
benchmark's, tests/bench.py) on a 6000x4000 photo-like layer whose "model answer" is
blurred, colour shifted and changed in a square, for every mode, with a large selection
(an ellipse over most of the layer, the region then being the whole layer) and without one.
"""

from __future__ import annotations

import argparse
import statistics
import time

from PIL import Image, ImageDraw, ImageFilter

from gpt_image_edit.blend import BLEND_MODES, blend_results
from tests.bench import photo
from tests.fake_wisgate import SQUARE_COLOUR, cast_table, square_box

SIZE = (6000, 4000)


def model_answer(source: Image.Image) -> Image.Image:
    """What the stand-in server's `drift` scenario does, at full size."""
    answer = source.convert("RGB")
    x1, y1, x2, y2 = square_box(answer.size, None)
    ImageDraw.Draw(answer).rectangle((x1, y1, x2 - 1, y2 - 1), fill=SQUARE_COLOUR)
    return answer.filter(ImageFilter.GaussianBlur(2)).point(cast_table("RGB")).convert("RGBA")


def timings(repeat: int) -> list[tuple[str, str, float, float]]:
    source = photo(*SIZE, seed=24).convert("RGBA")
    answer = model_answer(source)
    selection = Image.new("L", SIZE, 0)
    ImageDraw.Draw(selection).ellipse((500, 400, 5500, 3600), fill=255)
    rows = []
    for where, area in (("ellipse over most of it", selection), ("whole layer", None)):
        for mode in BLEND_MODES:
            seconds = []
            for _ in range(repeat):
                started = time.perf_counter()
                blend_results(mode, source, [answer], area)
                seconds.append(time.perf_counter() - started)
            rows.append((where, mode, statistics.median(seconds), max(seconds)))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.bench_blend",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"| 6000x4000 layer | blend | median s | slowest s |  ({args.repeat} runs)")
    print("| --- | --- | ---: | ---: |")
    for where, mode, median, slowest in timings(args.repeat):
        print(f"| {where} | {mode} | {median:.3f} | {slowest:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
