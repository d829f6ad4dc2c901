#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""GPT Image Edit for GIMP 2.10 (Python-Fu): Filters > AI > GPT Image Edit...

The edit itself is the host core's (gpt_image_edit_core.py, shared with GIMP 3): this file
is GIMP 2.10's adapter, answering the core's questions through gimpfu's PDB. GIMP 2.10 runs
it with its own Python 2.7, which has neither requests nor pillow, so the pictures are
edited by the worker (docs/job-protocol.md). Valid Python 2.7 and 3; only gimpfu and the
standard library are used.
"""

import os
import sys

from gimpfu import (
    ADD_BLACK_MASK,
    GRAY,
    PARASITE_PERSISTENT,
    PARASITE_UNDOABLE,
    PF_DRAWABLE,
    PF_IMAGE,
    PF_OPTION,
    PF_SPINNER,
    PF_STRING,
    PF_TEXT,
    PF_TOGGLE,
    PRECISION_U8_GAMMA,
    PRECISION_U8_LINEAR,
    RGB,
    gimp,
    main,
    pdb,
    register,
)

# The installer puts the host core, the host module and the geometry module beside this
# file in GIMP's plug-ins folder.
ENTRY_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ENTRY_DIR)
import gpt_image_edit_core as core  # noqa: E402

PROCEDURE = "python-fu-gpt-image-edit"
MENU = "<Image>/Filters/AI"
QUALITY_LABELS = ("Auto", "Low", "Medium", "High")
DEFAULT_QUALITY = core.QUALITIES.index(core.DEFAULT_QUALITY)
# The exported file lives for seconds: level 1 writes a large layer several times faster.
PNG_COMPRESSION = 1


def gpt_image_edit(image, drawable, prompt, model, size, quality, variants, use_selection):
    """The procedure; gimpfu calls it with the image and the active drawable first (after
    its own dialog, when run interactively).

    Failures end with one sentence in gimp.message and the image as it was: gimpfu has no
    error return, and raising would show the user a traceback.
    """
    values = {"prompt": text(prompt), "model": text(model), "size": text(size),
              "quality": quality_name(quality), "variants": int(variants),
              "use-selection": bool(use_selection)}
    outcome = core.edit(Gimp2Document(image, drawable, values), ENTRY_DIR)
    if outcome.status == "error":
        gimp.message(native(outcome.message))


def quality_name(quality):
    """PF_OPTION hands over the index of the choice (0-3), also from scripts; anything else
    is passed on for the core to refuse."""
    index = int(quality)
    return core.QUALITIES[index] if 0 <= index < len(core.QUALITIES) else text(str(quality))


def call(procedure, *arguments):
    """A PDB call; a failure (pygimp's RuntimeError) is one the core names by its step."""
    try:
        return getattr(pdb, procedure)(*arguments)
    except RuntimeError:
        raise core.GimpCallFailed()  # noqa: B904 (no "raise from" in Python 2.7)


class Gimp2Document(core.Document):
    def __init__(self, image, drawable, values):
        self.image = image
        self.drawable = drawable
        self.values = values

    # -- questions ----------------------------------------------------------------------
    def drawables(self):
        return [] if self.drawable is None else [self.drawable]

    def kind(self, drawable):
        if pdb.gimp_item_is_layer_mask(drawable):
            return "layer_mask"
        if pdb.gimp_item_is_group(drawable):
            return "group"
        return "layer" if pdb.gimp_item_is_layer(drawable) else "channel"

    def layer_of_mask(self, mask):
        return pdb.gimp_layer_from_mask(mask)

    def layer_name(self, layer):
        return text(layer.name)

    def layer_box(self, layer):
        offset_x, offset_y = pdb.gimp_drawable_offsets(layer)
        return (offset_x, offset_y, pdb.gimp_drawable_width(layer),
                pdb.gimp_drawable_height(layer))

    def selection_bounds(self):
        non_empty, x1, y1, x2, y2 = pdb.gimp_selection_bounds(self.image)
        return (x1, y1, x2, y2) if non_empty else None

    def ask_arguments(self):
        return self.values  # gimpfu showed its dialog before calling the procedure

    def image_size(self):
        return self.image.width, self.image.height

    def image_name(self):
        return text(self.image.name)

    def tattoo(self, item):
        return pdb.gimp_item_get_tattoo(item)

    def is_valid(self, item):
        return bool(pdb.gimp_item_is_valid(item))

    def image_is_open(self):
        return bool(pdb.gimp_image_is_valid(self.image))

    def layers_in(self, parent):
        return list(self.image.layers if parent is None else parent.children)

    def children(self, item):
        return list(item.children) if pdb.gimp_item_is_group(item) else []

    def parasite(self, item, name):
        found = item.parasite_find(name)
        return text(found.data) if found else None

    # -- export -------------------------------------------------------------------------
    def export_layer(self, layer, region, size, path):
        export_scaled(layer, RGB, PRECISION_U8_GAMMA, (-region.x, -region.y), region, size,
                      path)

    def export_selection(self, region, size, path):
        # Linear like the selection itself: a feathered edge keeps its values instead of
        # going through the sRGB curve.
        selection = pdb.gimp_image_get_selection(self.image)
        export_scaled(selection, GRAY, PRECISION_U8_LINEAR, (-region.x, -region.y), region,
                      size, path)

    # -- results ------------------------------------------------------------------------
    def load_layer(self, path):
        # The PNG loader itself: gimp-file-load-layer puts the file into Open Recent.
        loaded = call("file_png_load", native(path), native(path))
        try:
            return call("gimp_layer_new_from_drawable", loaded.layers[0], self.image)
        finally:
            pdb.gimp_image_delete(loaded)

    def new_group(self, name):
        group = call("gimp_layer_group_new", self.image)
        call("gimp_item_set_name", group, native(name))
        return group

    def parent_and_position(self, layer):
        return (pdb.gimp_item_get_parent(layer),
                pdb.gimp_image_get_item_position(self.image, layer))

    def insert(self, item, parent, position):
        call("gimp_image_insert_layer", self.image, item, parent, position)

    def set_name(self, item, name):
        call("gimp_item_set_name", item, native(name))

    def scale(self, item, width, height):
        if (pdb.gimp_drawable_width(item), pdb.gimp_drawable_height(item)) != (width, height):
            call("gimp_layer_scale", item, width, height, False)

    def move(self, item, x, y):
        call("gimp_layer_set_offsets", item, x, y)

    def capture_selection(self, region):
        """The selection's raw pixels over the region (the image's precision, as a layer
        mask has it), 0 beyond the canvas."""
        selection = self.image.selection
        bpp = selection.bpp
        x1, y1 = max(region.x, 0), max(region.y, 0)
        x2 = min(region.right, self.image.width)
        y2 = min(region.bottom, self.image.height)
        pixels = bytearray(region.width * region.height * bpp)
        if x2 > x1 and y2 > y1:
            inside = selection.get_pixel_rgn(x1, y1, x2 - x1, y2 - y1, False, False)[
                x1:x2, y1:y2]
            row_bytes = (x2 - x1) * bpp
            for row in range(y2 - y1):
                start = ((y1 - region.y + row) * region.width + x1 - region.x) * bpp
                pixels[start:start + row_bytes] = inside[row * row_bytes:(row + 1) * row_bytes]
        return region.width, region.height, bytes(pixels)

    def add_mask(self, item):
        call("gimp_layer_add_mask", item, call("gimp_layer_create_mask", item, ADD_BLACK_MASK))
        pdb.gimp_layer_set_edit_mask(item, False)

    def fill_mask(self, item, selection):
        width, height, pixels = selection
        mask = item.mask
        mask.get_pixel_rgn(0, 0, width, height, True, False)[0:width, 0:height] = pixels
        mask.flush()
        mask.update(0, 0, width, height)

    def set_visible(self, item, visible):
        call("gimp_item_set_visible", item, visible)

    def new_image(self, width, height):
        self.image = call("gimp_image_new", width, height, RGB)

    def show_new_image(self):
        try:
            pdb.gimp_display_new(self.image)
        except RuntimeError:  # no display in batch mode
            pass

    def attach_parasite(self, item, name, text_):
        # UNDOABLE: without it GIMP pushes a "Can't undo" step for a persistent parasite.
        try:
            item.attach_new_parasite(name, PARASITE_PERSISTENT | PARASITE_UNDOABLE,
                                     native(text_))
        except RuntimeError:
            raise core.GimpCallFailed()  # noqa: B904 (Python 2.7)

    def select(self, item):
        call("gimp_image_set_active_layer", self.image, item)

    def remove(self, item):
        call("gimp_image_remove_layer", self.image, item)

    def delete(self, item):
        call("gimp_item_delete", item)

    def undo_group_start(self):
        pdb.gimp_image_undo_group_start(self.image)

    def undo_group_end(self):
        pdb.gimp_image_undo_group_end(self.image)

    def flush(self):
        gimp.displays_flush()

    # -- waiting ------------------------------------------------------------------------
    def progress_start(self, text_):
        gimp.progress_init(native(text_))

    def progress_update(self, text_, fraction):
        pdb.gimp_progress_set_text(native(text_))
        gimp.progress_update(fraction)

    def progress_end(self):
        pdb.gimp_progress_end()


def export_scaled(drawable, base_type, precision, offsets, region, size, path):
    """Copy a drawable into a throw-away image the region's size, at `offsets`, scale it to
    `size` (the size the API gets) and save it as a fast PNG.

    Where the copy does not reach (a region past the canvas edge) GIMP fills with the
    context's background colour: black there means "not selected".
    """
    scratch = call("gimp_image_new_with_precision", region.width, region.height, base_type,
                   precision)
    pdb.gimp_context_push()
    try:
        pdb.gimp_image_undo_disable(scratch)
        pdb.gimp_context_set_background((0, 0, 0))
        copy = call("gimp_layer_new_from_drawable", drawable, scratch)
        call("gimp_image_insert_layer", scratch, copy, None, 0)
        call("gimp_layer_set_offsets", copy, offsets[0], offsets[1])
        call("gimp_layer_resize_to_image_size", copy)
        if tuple(size) != (region.width, region.height):
            call("gimp_image_scale", scratch, size[0], size[1])
        # interlace, compression, bKGD, gAMA, oFFs, pHYs, tIME
        call("file_png_save", scratch, copy, native(path), native(path), 0, PNG_COMPRESSION,
             0, 0, 0, 0, 0)
    finally:
        pdb.gimp_context_pop()
        pdb.gimp_image_delete(scratch)


# ---------------------------------------------------------------------------------------
# Text between Python 2 and 3: GIMP 2.10 hands over and takes UTF-8 byte strings.

def text(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def native(value):
    if isinstance(value, str):
        return value
    return value.encode("utf-8")


register(
    PROCEDURE,
    "Edit the layer, or the selected part of it, with the WisGate images API",
    "Sends the active layer (with a selection: only the region around it) and the prompt "
    "to the WisGate images API and inserts the edited picture as a new layer directly "
    "above, exactly aligned, with a layer mask from the selection (several variants land "
    "as a layer group). The API key and endpoint come from GPT_IMAGE_EDIT_API_KEY and "
    "GPT_IMAGE_EDIT_BASE_URL or the gpt-image-edit settings.json, never from here.",
    "GPT Image Edit contributors",
    "GPL-3.0-or-later",
    "2026",
    "GPT Image Edit...",
    "*",
    [
        (PF_IMAGE, "image", "Input image", None),
        (PF_DRAWABLE, "drawable", "Input drawable", None),
        (PF_TEXT, "prompt", "_Prompt: what should change", ""),
        (PF_STRING, "model", "_Model", "gpt-image-2"),
        (PF_STRING, "size", "_Size (auto or WIDTHxHEIGHT)", "auto"),
        (PF_OPTION, "quality", "_Quality", DEFAULT_QUALITY, QUALITY_LABELS),
        (PF_SPINNER, "variants", "_Variants", 1, (1, core.MAX_VARIANTS, 1)),
        (PF_TOGGLE, "use-selection", "Use the s_election", True),
    ],
    [],
    gpt_image_edit,
    menu=MENU,
)

main()
