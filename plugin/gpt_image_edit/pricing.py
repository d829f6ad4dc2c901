"""Pure arithmetic: what an edit costs, from the API's `usage` or estimated before sending.

Written once for both sides, like geometry.py: the worker imports it as
`gpt_image_edit.pricing`, and the installer copies this very file beside the GIMP host core
as `gpt_image_edit_pricing.py`, so the dialogs can show an estimate without starting the
worker. Valid Python 2.7 and 3, standard library only; never Python's `round`, which changed
between them. docs/cost.md says where the prices and the formula come from.
"""

from __future__ import absolute_import, division

import math
import numbers

# USD per million tokens, by model name prefix; the longest prefix that starts the model's
# name wins, so "gpt-image-1-mini" is not priced as "gpt-image-1". OpenAI's public price list
# (docs/cost.md, with its date); "gpt-image-2" covers the whole 2.x family.
DEFAULT_PRICES = {
    "gpt-image-2": {"text_input": 5.0, "image_input": 8.0, "image_output": 30.0},
    "gpt-image-1.5": {"text_input": 5.0, "image_input": 8.0, "image_output": 32.0},
    "gpt-image-1": {"text_input": 5.0, "image_input": 10.0, "image_output": 40.0},
    "gpt-image-1-mini": {"text_input": 2.0, "image_input": 2.5, "image_output": 8.0},
}
PRICE_KINDS = ("text_input", "image_input", "image_output")
PER_TOKENS = 1000000

# Output tokens of one 1024x1024 picture by quality (OpenAI's table for gpt-image-1); other
# sizes scale with their pixel area. "auto" is counted as "high": an estimate must not be low.
OUTPUT_TOKENS_1024 = {"low": 272, "medium": 1056, "high": 4160, "auto": 4160}
BASE_PIXELS = 1024 * 1024
# Each partial image (live preview) adds this many output tokens (OpenAI's price notes).
PARTIAL_IMAGE_TOKENS = 100
# Input pictures: OpenAI's vision rule (fit into 2048x2048, then a shortest side of at most
# 768, then 512-pixel tiles) with gpt-image-1's token counts per picture and per tile.
IMAGE_BASE_TOKENS = 65
IMAGE_TILE_TOKENS = 129
FIT_SIDE = 2048
SHORT_SIDE = 768
TILE = 512
CHARACTERS_PER_TOKEN = 4


class PriceError(ValueError):
    """A price table that cannot be used; its text says why (a clause, not a sentence)."""


def merged_prices(overrides=None):
    """The built-in table with the `prices` setting over it: an entry replaces or adds a
    prefix; kinds it leaves out keep the built-in entry's value. Raises PriceError."""
    table = dict((prefix, dict(entry)) for prefix, entry in DEFAULT_PRICES.items())
    if overrides is None:
        return table
    if not isinstance(overrides, dict):
        raise PriceError(u"it is not an object of model name prefixes")
    for prefix, entry in overrides.items():
        if not isinstance(entry, dict):
            raise PriceError(u"the price of '%s' is not an object" % prefix)
        merged = dict(table.get(prefix, {}))
        for kind, value in entry.items():
            if kind not in PRICE_KINDS or not _is_price(value):
                raise PriceError(u"'%s' of '%s' is not one of %s with a number"
                                 % (kind, prefix, u", ".join(PRICE_KINDS)))
            merged[kind] = float(value)
        missing = [kind for kind in PRICE_KINDS if kind not in merged]
        if missing:
            raise PriceError(u"the price of '%s' lacks %s" % (prefix, u", ".join(missing)))
        table[prefix] = merged
    return table


def price_for(model, prices=None):
    """(prefix, entry) of the longest prefix in `prices` (the merged table; the built-in
    one without) that starts `model`'s name, or (None, None): the cost is unknown."""
    table = DEFAULT_PRICES if prices is None else prices
    best = None
    for prefix in table:
        if model.startswith(prefix) and (best is None or len(prefix) > len(best)):
            best = prefix
    if best is None:
        return None, None
    return best, table[best]


def cost_of(usage, model, prices=None):
    """USD for an answer's `usage`, or None when it cannot be known: no price for the model,
    or a usage without the split of its input tokens into text and pictures."""
    _, entry = price_for(model, prices)
    if entry is None or not isinstance(usage, dict):
        return None
    output = usage.get("output_tokens")
    inputs = usage.get("input_tokens")
    details = usage.get("input_tokens_details")
    if not _is_count(output) or not _is_count(inputs):
        return None
    if isinstance(details, dict) and _is_count(details.get("text_tokens")) and _is_count(
            details.get("image_tokens")):
        text, image = details["text_tokens"], details["image_tokens"]
    elif inputs == 0:
        text, image = 0, 0
    else:
        return None  # a guess between two prices would be a wrong number
    return price(entry, text, image, output)


def price(entry, text_tokens, image_tokens, output_tokens):
    """USD for token counts at one price entry."""
    return (text_tokens * entry["text_input"] + image_tokens * entry["image_input"]
            + output_tokens * entry["image_output"]) / PER_TOKENS


def output_tokens(width, height, quality):
    """Output tokens of one picture of width x height at `quality`."""
    base = OUTPUT_TOKENS_1024.get(quality, OUTPUT_TOKENS_1024["high"])
    return int(math.ceil(base * width * height / BASE_PIXELS))


def image_tokens(width, height):
    """Input tokens of one picture sent at width x height."""
    scale = min(1.0, FIT_SIDE / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, SHORT_SIDE / min(width, height))
    width, height = width * scale, height * scale
    tiles = int(math.ceil(width / TILE)) * int(math.ceil(height / TILE))
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


def text_tokens(prompt_length):
    return int(math.ceil(prompt_length / CHARACTERS_PER_TOKEN))


def estimate(model, width, height, quality, variants=1, partial_images=0, prompt_length=0,
             references=(), prices=None):
    """The estimated tokens and cost of one edit asking for `variants` pictures of
    width x height (the request size) at `quality`, with `partial_images` previews each,
    a prompt of `prompt_length` characters and reference pictures of the sizes in
    `references` ((width, height) as sent). A dict: `text_tokens`, `image_tokens`,
    `output_tokens`, `cost_usd` (None when no price matches the model) and `priced_as`
    (the price table's prefix, or None)."""
    text = text_tokens(prompt_length)
    image = image_tokens(width, height) + sum(image_tokens(w, h) for w, h in references)
    output = variants * (output_tokens(width, height, quality)
                         + partial_images * PARTIAL_IMAGE_TOKENS)
    prefix, entry = price_for(model, prices)
    return {"text_tokens": text, "image_tokens": image, "output_tokens": output,
            "cost_usd": None if entry is None else price(entry, text, image, output),
            "priced_as": prefix}


def format_usd(cost):
    """'$0.1234' (cents and below shown), or 'cost unknown'."""
    if cost is None:
        return u"cost unknown"
    return u"$%.4f" % cost


def _is_price(value):
    return (not isinstance(value, bool) and isinstance(value, numbers.Real)
            and 0 <= value < float("inf"))


def _is_count(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 0
