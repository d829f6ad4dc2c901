"""What both GIMPs do the same way, written once for the tests of every host: the fake host
(tests/test_core.py), real GIMP 3 (tests/test_gimp3.py) and GIMP 2.10 (tests/test_gimp2.py).

The sentences are spelled out here, not imported from the core, so that a change of wording
is a change the tests see.
"""

from __future__ import annotations

SOURCE_NAME = "source"

# Refusals, before anything is exported or sent: case name -> the one sentence.
REFUSALS = {
    "empty_prompt": "The prompt is empty: describe what should change and try again.",
    "layer_group": "GPT Image Edit cannot edit a layer group: select one layer inside it and "
                   "try again.",
    "selection_beside": "The selection does not touch the layer 'source': select an area on "
                        "it, or clear the selection to edit the whole layer.",
    "variants": "Variants must be between 1 and 10: choose a number in that range and try "
                "again.",
    "bad_size": "gpt-image-2 does not take the size 1000x1000 (both sides must be multiples "
                "of 16): use auto or a size such as 1536x1024.",
}
NO_LAYER = "GPT Image Edit works on one layer: select exactly one layer and try again."
NOT_A_LAYER = "GPT Image Edit works on a layer, not on a channel: select a layer and try again."
UNEXPECTED = ("GPT Image Edit failed unexpectedly: the image is unchanged; please report this "
              "with the text GIMP printed on its console.")
NOT_INSERTED = "GIMP could not insert the edited layers, so the image is unchanged: try again."
NOT_EXPORTED = ("GPT Image Edit could not write the layer to its temporary folder: check the "
                "free disk space and try again.")
UNREADABLE_RESULT = "GPT Image Edit could not read a result of the worker: try again."
NO_KEY = ("No API key is set: enter it in Filters > AI > GPT Image Settings... or set "
          "GPT_IMAGE_EDIT_API_KEY.")

# How each refusal case is set up: the arguments it changes, or what the user chose.
REFUSAL_ARGUMENTS = {"empty_prompt": {"prompt": "  \n "}, "variants": {"variants": 11},
                     "bad_size": {"size": "1000x1000"}}


def above_limit(cost: float, limit: float, settings_file) -> str:
    """The worker's sentence for an edit estimated at `cost` above the spending limit, as a
    non-interactive run in either GIMP ends with it (nothing sent). It names where the limit
    is set, `settings_file` or the environment: GIMP's settings dialog does not hold it."""
    return (f"This edit would cost about ${cost:.4f}, above the spending limit of "
            f"${limit:.2f}: nothing was sent; choose fewer variants or a lower quality, or "
            f"raise the limit (max_cost_usd in {settings_file}, or GPT_IMAGE_EDIT_MAX_COST).")


def estimated_cost(layer_size, prompt: str, variants: int = 1, quality: str = "high",
                   previews: int = 2) -> float:
    """The estimate of a whole-layer gpt-image-2 edit of a layer of `layer_size`."""
    from gpt_image_edit import pricing
    from gpt_image_edit.geometry import request_size

    width, height = request_size(*layer_size, "gpt-image-2", "auto")
    return pricing.estimate("gpt-image-2", width, height, quality, variants, previews,
                            len(prompt))["cost_usd"]
