#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""GPT Image Edit for GIMP 2.10 (Python-Fu): Filters > AI > GPT Image Edit... and
Filters > AI > GPT Image Settings...

The edit itself is the host core's (gpt_image_edit_core.py, shared with GIMP 3): this file
is GIMP 2.10's adapter, answering the core's questions through gimpfu's PDB. GIMP 2.10 runs
it with its own Python 2.7, which has neither requests nor pillow, so the pictures are
edited by the worker (docs/job-protocol.md). Valid Python 2.7 and 3; only gimpfu and the
standard library are used.
"""

import os
import sys
import time
import traceback

try:  # Python 2.7, GIMP 2.10's
    from urllib import pathname2url

    from urlparse import urljoin
except ImportError:
    from urllib.parse import urljoin
    from urllib.request import pathname2url

import gimpfu
from gimpfu import (
    ADD_BLACK_MASK,
    INTERPOLATION_LINEAR,
    NORMAL_MODE,
    PARASITE_PERSISTENT,
    PARASITE_UNDOABLE,
    PDB_ERROR_HANDLER_INTERNAL,
    PDB_ERROR_HANDLER_PLUGIN,
    PF_DRAWABLE,
    PF_IMAGE,
    PF_LAYER,
    PF_OPTION,
    PF_SPINNER,
    PF_STRING,
    PF_TEXT,
    PF_TOGGLE,
    PRECISION_U8_GAMMA,
    RGB,
    RGB_IMAGE,
    RGBA_IMAGE,
    RUN_INTERACTIVE,
    RUN_NONINTERACTIVE,
    RUN_WITH_LAST_VALS,
    gimp,
    pdb,
    register,
)

# GIMP 2.10 tries to run every file in plug-ins/ as a plug-in (on Windows every .py), so
# the installer puts the helper modules (the host core, the host module, the geometry
# module, the settings dialog), the worker description and the manual in a folder of their
# own that it does not query: one named unlike any file in it.
LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt-image-edit-gimp2-lib")
sys.path.insert(0, LIB_DIR)
import gpt_image_edit_core as core  # noqa: E402
import gpt_image_edit_cost2 as cost_dialog  # noqa: E402
import gpt_image_edit_settings2 as settings_dialog  # noqa: E402

PROCEDURE = "python-fu-gpt-image-edit"
SETTINGS_PROCEDURE = "python-fu-gpt-image-edit-settings"
# The edit's own helper (no menu), as GIMP 3's plug-in-gpt-image-edit-wait: the worker,
# the progress and the live previews in a process of their own, which GIMP's Cancel ends
# while the edit's process lives on to take the previews away.
WAIT_PROCEDURE = "python-fu-gpt-image-edit-wait"
HELP_DOMAIN = "gpt-image-edit"  # as GIMP 3's; installed with the manual in LIB_DIR/help/
MENU = "<Image>/Filters/AI"
QUALITY_LABELS = ("Auto", "Low", "Medium", "High")
NOTE_SECONDS = 3.0  # how long the cost stays in the progress before the dialog closes
DEFAULT_QUALITY = core.QUALITIES.index(core.DEFAULT_QUALITY)
# The blend's choices by index, Seamless, the default, first (index 0, the value of an integer
# argument left unset). GIMP 2.10's Python-Fu and Script-Fu insist on every argument, so a
# 2.10 script written before blend and reference must add them (docs/blending.md).
BLENDS = ("seamless", "feather", "none")
BLEND_LABELS = ("Seamless: feather, the model's colour drift corrected",
                "Feather: a soft mask edge inside the selection",
                "None: the result as sent, the bare selection as mask")
# gimpfu's drawable field has no empty choice: the edited layer itself, which it shows when
# the dialog opens, means "no reference" (also for scripts, which may pass None as well).
REFERENCE_LABEL = "_Reference (the edited layer itself: none)"
REFERENCE_INDEX = 9  # of the reference among the registered parameters (image first)


def gpt_image_edit(image, drawable, prompt, model, size, quality, variants, use_selection,
                   blend, reference):
    """The procedure; gimpfu calls it with the image and the active drawable first (after
    its own dialog, when run interactively). `blend` and `reference` were added last, as
    the spec adds arguments.

    Failures end with one sentence in gimp.message and the image as it was: gimpfu has no
    error return, and raising would show the user a traceback.
    """
    values = {"prompt": text(prompt), "model": text(model), "size": text(size),
              "quality": quality_name(quality), "variants": int(variants),
              "use-selection": bool(use_selection), "blend": blend_name(blend),
              "reference": reference}
    # A failing PDB call becomes the core's one sentence; GIMP must not add its own
    # "Calling error" message.
    pdb.gimp_plugin_set_pdb_error_handler(PDB_ERROR_HANDLER_PLUGIN)
    try:
        # A person runs it (the dialog, or Filters > Repeat with the last values): someone to
        # ask, and to show live previews to; a script's call has no window to watch.
        attended = RunMode.current in (RUN_INTERACTIVE, RUN_WITH_LAST_VALS)
        document = Gimp2Document(image, drawable, values, attended)
        document.shows_previews = attended
        outcome = core.edit(document, LIB_DIR)
    finally:
        pdb.gimp_plugin_set_pdb_error_handler(PDB_ERROR_HANDLER_INTERNAL)
    if outcome.status == "error":
        gimp.message(native(outcome.message))


def quality_name(quality):
    """PF_OPTION hands over the index of the choice (0-3), also from scripts; anything else
    is passed on for the core to refuse."""
    index = int(quality)
    return core.QUALITIES[index] if 0 <= index < len(core.QUALITIES) else text(str(quality))


def blend_name(blend):
    """PF_OPTION hands over the index of the choice (BLENDS), also from scripts; anything
    else is passed on for the core to refuse."""
    index = int(blend)
    return BLENDS[index] if 0 <= index < len(BLENDS) else text(str(blend))


def call(procedure, *arguments):
    """A PDB call; a failure (pygimp's RuntimeError) is one the core names by its step."""
    try:
        return getattr(pdb, procedure)(*arguments)
    except RuntimeError:
        raise core.GimpCallFailed()  # noqa: B904 (no "raise from" in Python 2.7)


class Gimp2Document(core.Document):
    def __init__(self, image, drawable, values, attended=False):
        self.image = image
        self.drawable = drawable
        self.values = values
        self.attended = attended

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

    def item_id(self, item):
        return item.ID

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

    def confirm_cost(self, message):
        if not self.attended:
            return False
        if not cost_dialog.ask_to_send(native(message), PROCEDURE):
            raise core.Cancelled()  # the retoucher read the sentence: no message again
        return True

    def show_note(self, text_):
        # The progress's last words, held for a moment: run from gimpfu's dialog, the
        # progress is that dialog's bar, and a message from inside it makes GIMP 2.10 open
        # two windows (the message, and "Unable to run GimpPdbProgress callback"). The
        # result is on the canvas and GIMP usable meanwhile. A script's runs keep the cost
        # in the result's parasite only.
        if self.attended:
            gimp.progress_init(native(text_))
            gimp.progress_update(1.0)
            time.sleep(NOTE_SECONDS)

    # -- pixels both ways: raw, through pixel regions -------------------------------------
    def layer_pixels(self, layer, region):
        """An 8-bit perceptual RGB(A) layer of an image in GIMP's built-in sRGB is read as it
        is stored; anything else (grey, indexed, linear, 16/32 bits, another colour profile)
        through an RGBA copy of the region in an 8-bit sRGB image: GIMP converts a layer
        copied into another image to its precision and profile. The layer may be a
        reference in another image."""
        if is_plain_rgb(layer.image, layer):
            mode = "RGBA" if pdb.gimp_drawable_has_alpha(layer) else "RGB"
            return mode, read_region(layer, region.x, region.y, region.width, region.height)
        scratch = call("gimp_image_new_with_precision", region.width, region.height, RGB,
                       PRECISION_U8_GAMMA)
        try:
            pdb.gimp_image_undo_disable(scratch)
            copy = call("gimp_layer_new_from_drawable", layer, scratch)
            call("gimp_image_insert_layer", scratch, copy, None, 0)
            call("gimp_layer_add_alpha", copy)
            call("gimp_layer_set_offsets", copy, -region.x, -region.y)
            call("gimp_layer_resize_to_image_size", copy)
            return "RGBA", read_region(copy, 0, 0, region.width, region.height)
        finally:
            pdb.gimp_image_delete(scratch)

    def selection_pixels(self, region):
        """The selection's own values (linear, as GIMP keeps it) over `region`, 0 where the
        region reaches beyond the canvas (pixel regions stop at the drawable's edge)."""
        selection = pdb.gimp_image_get_selection(self.image)
        left, top = max(region.x, 0), max(region.y, 0)
        right = min(region.right, pdb.gimp_image_width(self.image))
        bottom = min(region.bottom, pdb.gimp_image_height(self.image))
        if (left, top, right, bottom) == (region.x, region.y, region.right, region.bottom):
            return read_region(selection, left, top, region.width, region.height)
        pixels = bytearray(region.width * region.height)
        if right > left and bottom > top:
            inside = read_region(selection, left, top, right - left, bottom - top)
            width = right - left
            for row in range(bottom - top):
                start = (top - region.y + row) * region.width + left - region.x
                pixels[start:start + width] = inside[row * width:(row + 1) * width]
        return bytes(pixels)

    def new_layer(self, width, height, mode, pixels):
        layer_type = RGBA_IMAGE if mode == "RGBA" else RGB_IMAGE
        if is_plain_rgb(self.image):
            layer = gimp.Layer(self.image, "GPT Image Edit", width, height, layer_type, 100,
                               NORMAL_MODE)
            write_region(layer, width, height, pixels)
            return layer
        # Another base type, precision or profile: GIMP converts a copy from an 8-bit sRGB
        # image.
        scratch = call("gimp_image_new_with_precision", width, height, RGB, PRECISION_U8_GAMMA)
        try:
            pdb.gimp_image_undo_disable(scratch)
            layer = gimp.Layer(scratch, "GPT Image Edit", width, height, layer_type, 100,
                               NORMAL_MODE)
            write_region(layer, width, height, pixels)
            return call("gimp_layer_new_from_drawable", layer, self.image)
        finally:
            pdb.gimp_image_delete(scratch)

    # -- results ------------------------------------------------------------------------
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

    def move(self, item, x, y):
        call("gimp_layer_set_offsets", item, x, y)

    def add_mask(self, item):
        call("gimp_layer_add_mask", item, call("gimp_layer_create_mask", item, ADD_BLACK_MASK))
        pdb.gimp_layer_set_edit_mask(item, False)

    def fill_mask(self, item, pixels):
        mask = item.mask
        if pdb.gimp_image_get_precision(self.image) == PRECISION_U8_GAMMA:
            # An 8-bit perceptual image keeps its channels, the selection too, as Y' u8 but
            # layer masks as linear Y u8: the same conversion GIMP makes for "Add Layer Mask:
            # Selection", so a soft edge keeps its look. A blended result's mask comes from
            # the worker in the selection's encoding (it was made from it), so it too.
            pixels = bytes(pixels).translate(PERCEPTUAL_TO_LINEAR)
        write_region(mask, mask.width, mask.height, pixels)
        mask.update(0, 0, mask.width, mask.height)  # in the image already: the display follows

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
        # Exactly the UTF-8 JSON bytes GIMP 3 writes: gimp.Parasite keeps the length it is
        # given (attach_new_parasite would add a NUL byte). UNDOABLE: without it GIMP pushes
        # a "Can't undo" step for a persistent parasite.
        try:
            item.parasite_attach(gimp.Parasite(name, PARASITE_PERSISTENT | PARASITE_UNDOABLE,
                                               native(text_)))
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
    @property
    def watches_worker(self):
        return not self.shows_previews  # with previews, the wait procedure runs it

    def run_worker(self, worker, job):
        """With previews, the worker runs in the wait procedure's process (run_wait_for),
        which owns the progress and so GIMP's Cancel; whatever became of it, this process
        then takes away every preview it left."""
        if (not self.shows_previews or not pdb.gimp_image_is_valid(self.image)
                or not pdb.gimp_procedural_db_proc_exists(WAIT_PROCEDURE)):
            return core.watch_worker(self, worker, job)
        return run_wait_for(self.image, self.edited_layer(), job, self.progress_note)

    def edited_layer(self):
        """The layer being edited (the core checked the choice): a chosen mask's layer."""
        if pdb.gimp_item_is_layer_mask(self.drawable):
            return pdb.gimp_layer_from_mask(self.drawable)
        return self.drawable

    def progress_start(self, text_):
        gimp.progress_init(native(text_))

    def progress_update(self, text_, fraction):
        pdb.gimp_progress_set_text(native(text_))
        gimp.progress_update(fraction)

    def progress_end(self):
        pdb.gimp_progress_end()


def is_plain_rgb(image, layer=None):
    """An 8-bit perceptual RGB image (and layer) in GIMP's built-in sRGB (no profile of its
    own): pixel regions hand over and take its bytes as they are, sRGB R'G'B'(A). Pixel
    regions give stored values, so any other image is converted through a copy."""
    if pdb.gimp_image_base_type(image) != RGB:
        return False
    if pdb.gimp_image_get_precision(image) != PRECISION_U8_GAMMA:
        return False
    if pdb.gimp_image_get_color_profile(image)[0]:  # the profile's length: 0 for none
        return False
    return layer is None or pdb.gimp_drawable_is_rgb(layer)


def srgb_to_linear(value):
    """An 8-bit sRGB-encoded value as an 8-bit linear one (the sRGB transfer curve)."""
    level = value / 255.0
    linear = level / 12.92 if level <= 0.04045 else ((level + 0.055) / 1.055) ** 2.4
    return int(linear * 255 + 0.5)


PERCEPTUAL_TO_LINEAR = bytes(bytearray(srgb_to_linear(value) for value in range(256)))


def read_region(drawable, x, y, width, height):
    """A rectangle of the drawable (its own coordinates) as raw bytes, rows top first."""
    try:
        return drawable.get_pixel_rgn(x, y, width, height, False, False)[x:x + width,
                                                                         y:y + height]
    except (RuntimeError, TypeError, ValueError):
        raise core.GimpCallFailed()  # noqa: B904 (Python 2.7)


def write_region(drawable, width, height, pixels):
    """Raw bytes into the whole of a drawable not in the image yet, or the mask of a result
    just inserted (written directly, no shadow buffer: nothing of it is to undo on its own)."""
    try:
        region = drawable.get_pixel_rgn(0, 0, width, height, True, False)
        region[0:width, 0:height] = bytes(pixels)
        drawable.flush()
    except (RuntimeError, TypeError, ValueError):
        raise core.GimpCallFailed()  # noqa: B904 (Python 2.7)


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
        # Added at the end (product.md): scripts written before get the defaults.
        (PF_OPTION, "blend", "_Blend", 0, BLEND_LABELS),
        (PF_DRAWABLE, "reference", REFERENCE_LABEL, None),
    ],
    [],
    gpt_image_edit,
    menu=MENU,
)


# ---------------------------------------------------------------------------------------
# The settings procedure.

class RunMode(object):
    """gimpfu hands its procedures no run mode: run() below notes it (the settings
    procedure refuses scripts; an edit asks and shows its cost only with a person there)."""
    current = None


def gpt_image_settings():
    """Its dialog (also for Filters > Repeat); called from a script, a sentence saying
    where the settings are made."""
    if RunMode.current == RUN_NONINTERACTIVE:
        gimp.message("GPT Image Settings can only be changed in its dialog: open %s."
                     % core.host.SETTINGS_MENU)
        return
    try:
        worker = core.host.find_worker(LIB_DIR)
        settings_dialog.SettingsDialog(worker, SETTINGS_PROCEDURE).run()
    except core.host.HostError as error:
        gimp.message(native(error.args[0] if error.args else ""))


register(
    SETTINGS_PROCEDURE,
    "Set the endpoint, API key and timeout of GPT Image Edit",
    "Saves them to the gpt-image-edit settings file (readable only by you). The key is "
    "never shown back, and is no argument of this procedure.",
    "GPT Image Edit contributors",
    "GPL-3.0-or-later",
    "2026",
    "GPT Image Settings...",
    "",
    [],
    [],
    gpt_image_settings,
    menu=MENU,
)


# ---------------------------------------------------------------------------------------
# Live previews (docs/architecture.md, "Live previews"): the wait procedure shows them,
# the edit takes them away.

def run_wait_for(image, source, job, progress_note):
    """The edit's side: the wait procedure run on the written job; the manifest it left,
    Cancelled when GIMP's Cancel ended it (pygimp raises RuntimeError for a cancelled call
    as for a failed one: a wait that left no outcome was stopped), HostError else."""
    undo_was_enabled = bool(pdb.gimp_image_undo_is_enabled(image))
    # Its Cancel is the wait procedure's alone: GIMP ends every process that started a
    # progress on this display.
    pdb.gimp_progress_end()
    stopped = False
    try:
        getattr(pdb, WAIT_PROCEDURE.replace("-", "_"))(image, source, native(job.folder),
                                                       native(progress_note))
    except RuntimeError:
        stopped = True
    finally:
        if pdb.gimp_image_is_valid(image):
            if undo_was_enabled and not pdb.gimp_image_undo_is_enabled(image):
                pdb.gimp_image_undo_thaw(image)  # it was ended between freeze and thaw
            remove_previews(image, job.folder)
            gimp.displays_flush()
        gimp.progress_init("GPT Image Edit")
    manifest = job.load_outcome()
    if manifest is None:
        if stopped:
            raise core.Cancelled()
        raise core.host.HostError(core.UNEXPECTED)
    return manifest


class PreviewDocument(Gimp2Document):
    """The wait procedure's side: the worker's progress in the status bar and each live
    preview as a layer where the result will land, inserted and removed with the image's
    undo frozen for just those calls, so that it never enters the undo history while the
    retoucher's own steps do."""

    def __init__(self, image, source, job_folder):
        Gimp2Document.__init__(self, image, source, {})
        self.source = source
        self.job_folder = job_folder
        self.shown = None

    def show_preview(self, preview):
        if not pdb.gimp_image_is_valid(self.image):
            return
        try:
            pixels = preview.pixels()
            width, height = preview.size
            layer = self.new_layer(width, height, preview.mode, pixels)
        except (IOError, OSError, ValueError, core.GimpCallFailed):
            return  # gone with a job that ended meanwhile: the result matters more
        del pixels
        active = pdb.gimp_image_get_active_layer(self.image)
        place = preview.placement
        pdb.gimp_image_undo_freeze(self.image)
        try:
            if self.shown is not None and pdb.gimp_item_is_valid(self.shown):
                pdb.gimp_image_remove_layer(self.image, self.shown)
            self.shown = None
            pdb.gimp_item_set_name(layer, native(core.host.PREVIEW_NAME))
            # Marked before it enters the image: no layer of it is ever there unmarked.
            layer.parasite_attach(gimp.Parasite(core.host.PREVIEW_PARASITE, 0,
                                                native(self.job_folder)))
            parent, position = self.where()
            pdb.gimp_image_insert_layer(self.image, layer, parent, position)
            self.shown = layer
            if (width, height) != (place["width"], place["height"]):
                scale(layer, place["width"], place["height"])
            pdb.gimp_layer_set_offsets(layer, place["x"], place["y"])
            # Nothing of the retoucher's goes into it or moves it (2.10 has no visibility
            # lock).
            pdb.gimp_item_set_lock_content(layer, True)
            pdb.gimp_item_set_lock_position(layer, True)
            if active is not None and pdb.gimp_item_is_valid(active):
                pdb.gimp_image_set_active_layer(self.image, active)  # inserting chose it
        except RuntimeError:
            traceback.print_exc(file=sys.stderr)  # a preview less: the edit goes on
        finally:
            pdb.gimp_image_undo_thaw(self.image)
        gimp.displays_flush()

    def where(self):
        if self.source is None or not pdb.gimp_item_is_valid(self.source):
            return None, 0
        return core.where_results_go(self, self.source, {"tattoo": self.tattoo(self.source)})

    def clear_preview(self):
        if pdb.gimp_image_is_valid(self.image):
            remove_previews(self.image, self.job_folder)
            gimp.displays_flush()
        self.shown = None


def remove_previews(image, job_folder):
    """Every preview layer of the job `job_folder` in the image (its parasite says which),
    removed with the image's undo frozen for just that."""
    tag = native(job_folder)
    found = [layer for layer in all_layers(image.layers)
             if getattr(layer.parasite_find(core.host.PREVIEW_PARASITE), "data", None) == tag]
    if not found:
        return
    pdb.gimp_image_undo_freeze(image)
    try:
        for layer in found:
            if pdb.gimp_item_is_valid(layer):
                pdb.gimp_image_remove_layer(image, layer)
    finally:
        pdb.gimp_image_undo_thaw(image)


def all_layers(layers):
    for layer in layers:
        yield layer
        if pdb.gimp_item_is_group(layer):
            for child in all_layers(layer.children):
                yield child


def scale(layer, width, height):
    """A preview scaled up to its placement: linear, fast even to 24 MP, and good enough
    for a picture that is replaced within seconds."""
    pdb.gimp_context_push()
    try:
        pdb.gimp_context_set_interpolation(INTERPOLATION_LINEAR)
        pdb.gimp_layer_scale(layer, width, height, False)
    finally:
        pdb.gimp_context_pop()


def gpt_image_edit_wait(image, source, job_folder, progress_note):
    """The wait procedure: the worker on the job the edit wrote, its progress and previews
    shown here; how it ended is left in the job's folder for the edit (Job.load_outcome),
    and nothing is said here: the edit says it."""
    pdb.gimp_plugin_set_pdb_error_handler(PDB_ERROR_HANDLER_PLUGIN)
    try:
        job = core.host.Job(text(job_folder))
    except (TypeError, ValueError) as error:
        gimp.message(native(str(error)))
        return
    document = PreviewDocument(image, source, job.folder)
    document.progress_note = text(progress_note)  # the edit's estimate
    document.progress_start(u"GPT Image Edit: starting")
    try:
        core.watch_worker(document, core.host.find_worker(LIB_DIR), job)
        job.save_outcome()
    except core.host.HostError as error:
        job.save_outcome(error)
    except Exception:  # no outcome: the edit gives its sentence, never a traceback
        traceback.print_exc(file=sys.stderr)
    finally:
        document.progress_end()


register(
    WAIT_PROCEDURE,
    "GPT Image Edit's wait for the worker, with its live previews (internal)",
    "Called by " + PROCEDURE + " only: runs the worker on the job in job-folder, shows "
    "its progress and live previews on the image, and leaves how it ended in the job "
    "folder.",
    "GPT Image Edit contributors",
    "GPL-3.0-or-later",
    "2026",
    "",
    "*",
    [
        (PF_IMAGE, "image", "The edited image", None),
        (PF_LAYER, "source", "The edited layer (previews go above it)", None),
        (PF_STRING, "job-folder", "The edit's job folder", ""),
        (PF_STRING, "progress-note", "Words after the seconds in the progress text (the "
         "estimate)", ""),
    ],
    [],
    gpt_image_edit_wait,
)


# ---------------------------------------------------------------------------------------
# gimpfu's main(), with the manual as help and the run mode noted for the settings procedure.

def help_uri():
    """The installed manual's folder (help/en/gimp-help.xml maps each dialog's help id, the
    procedure's name, to its part of manual.html) as the file: URI GIMP's help wants."""
    return urljoin("file:", pathname2url(os.path.join(LIB_DIR, "help")))


def query():
    """What GIMP 2.10 records when it first sees the plug-in: the procedures, and the help
    domain their dialogs' Help and F1 open (GIMP takes it only while querying)."""
    gimpfu._query()
    pdb.gimp_plugin_help_register(HELP_DOMAIN, help_uri())


def run(proc_name, params):
    RunMode.current = params[0]
    if proc_name == PROCEDURE and params[0] != RUN_NONINTERACTIVE and len(params) > 2:
        forget_reference(params[2])
    return gimpfu._run(proc_name, params)


def forget_reference(drawable):
    """A reference is sent only when chosen for this edit: the values gimpfu remembers (its
    dialog's defaults, and what Filters > Repeat runs with) get the edited drawable as the
    reference, which means none, before gimpfu reads them."""
    import gimpshelf

    key = "python-fu-save--" + PROCEDURE  # where gimpfu keeps the last values
    registered = [param[3] for param in gimpfu._registered_plugins_[PROCEDURE][8]]
    remembered = list(gimpshelf.shelf[key]) if gimpshelf.shelf.has_key(key) else []
    values = remembered + registered[len(remembered):]
    values[REFERENCE_INDEX] = drawable
    gimpshelf.shelf[key] = tuple(values)  # as gimpfu keeps them: Repeat adds a tuple to it


gimp.main(None, None, query, run)
