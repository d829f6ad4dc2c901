#!/usr/bin/env python
# -*- coding: utf-8 -*-
"""GPT Image Edit for GIMP 2.10 (Python-Fu): Filters > AI > GPT Image Edit... and
Filters > AI > GPT Image Settings...

GIMP 2.10 runs this file with its own Python 2.7, which has neither requests nor pillow, so
the edit runs in the worker (docs/job-protocol.md). Here we export the layer (and the
selection) into a private job folder, run the worker while GIMP's progress bar moves, and
insert its results as new layers in one undo group. Valid Python 2.7 and 3; only gimpfu and
the standard library are used.
"""

import os
import sys

import gimpfu
from gimpfu import (
    ADD_SELECTION_MASK,
    GRAY,
    PARASITE_PERSISTENT,
    PDB_ERROR_HANDLER_INTERNAL,
    PDB_ERROR_HANDLER_PLUGIN,
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
    RUN_NONINTERACTIVE,
    gimp,
    pdb,
    register,
)

# GIMP 2.10 tries to run every file in plug-ins/ as a plug-in (on Windows every .py), so
# the installer puts the helper modules and the worker description in a folder of their
# own that it does not query: one named unlike any file in it.
LIB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpt-image-edit-gimp2-lib")
sys.path.insert(0, LIB_DIR)
import gpt_image_edit_host as host  # noqa: E402
import gpt_image_edit_settings2 as settings_dialog  # noqa: E402

PROCEDURE = "python-fu-gpt-image-edit"
SETTINGS_PROCEDURE = "python-fu-gpt-image-edit-settings"
SETTINGS_MENU = "Filters > AI > GPT Image Settings..."
MENU = "<Image>/Filters/AI"
QUALITIES = ("auto", "low", "medium", "high")
QUALITY_LABELS = ("Auto", "Low", "Medium", "High")
DEFAULT_QUALITY = QUALITIES.index("high")
MAX_VARIANTS = 10
# The worker reports no fraction, only elapsed time: the bar creeps towards this so it
# keeps moving (GIMP is alive) without ever claiming to be done.
PROGRESS_CEILING = 0.95
PROGRESS_HALF_SECONDS = 30.0
# The exported file lives for seconds: level 1 writes a large layer several times faster.
PNG_COMPRESSION = 1


def gpt_image_edit(image, drawable, prompt, model, size, quality, variants, use_selection):
    """The procedure; gimpfu calls it with the image and the active drawable first.

    Expected failures end with one sentence in gimp.message and the image as it was:
    gimpfu has no error return, and raising would show the user a traceback.
    """
    # A failing PDB call becomes our one sentence below; GIMP must not add its own.
    pdb.gimp_plugin_set_pdb_error_handler(PDB_ERROR_HANDLER_PLUGIN)
    try:
        arguments = read_arguments(prompt, model, size, quality, variants)
        layer = editable_layer(drawable)
        worker = host.find_worker(LIB_DIR)
        edit_layer(image, layer, worker, arguments, bool(use_selection))
    except host.HostError as error:
        gimp.message(native(error.args[0] if error.args else ""))
    finally:
        pdb.gimp_plugin_set_pdb_error_handler(PDB_ERROR_HANDLER_INTERNAL)


# ---------------------------------------------------------------------------------------
# Arguments and the layer.

def read_arguments(prompt, model, size, quality, variants):
    arguments = {
        "prompt": text(prompt).strip(),
        "model": text(model).strip() or "gpt-image-2",
        "size": text(size).strip() or "auto",
        "quality": quality_name(quality),
        "variants": int(variants),
    }
    if not arguments["prompt"]:
        raise host.HostError("The prompt is empty: describe what should change and try again.")
    if not 1 <= arguments["variants"] <= MAX_VARIANTS:
        raise host.HostError("Variants must be between 1 and %d: choose a number in that "
                             "range and try again." % MAX_VARIANTS)
    return arguments


def quality_name(quality):
    """PF_OPTION hands over the index of the choice (0-3), also from scripts."""
    index = int(quality)
    if not 0 <= index < len(QUALITIES):
        raise host.HostError("The quality must be 0 (auto), 1 (low), 2 (medium) or 3 (high): "
                             "choose one and try again.")
    return QUALITIES[index]


def editable_layer(drawable):
    """The layer to edit: the active layer, or the layer whose mask is being edited."""
    if drawable is not None and pdb.gimp_item_is_layer_mask(drawable):
        drawable = pdb.gimp_layer_from_mask(drawable)
    if drawable is None or not pdb.gimp_item_is_layer(drawable):
        raise host.HostError("GPT Image Edit works on a layer, not on a channel: select a "
                             "layer and try again.")
    if pdb.gimp_item_is_group(drawable):
        raise host.HostError("GPT Image Edit cannot edit a layer group: select one layer "
                             "inside it and try again.")
    return drawable


def layer_geometry(layer):
    offset_x, offset_y = pdb.gimp_drawable_offsets(layer)
    return {"width": pdb.gimp_drawable_width(layer), "height": pdb.gimp_drawable_height(layer),
            "offset_x": offset_x, "offset_y": offset_y}


def selection_touches(image, geometry):
    """True with a selection that overlaps the layer, False with none; a selection beside
    the layer is a mistake worth saying."""
    non_empty, x1, y1, x2, y2 = pdb.gimp_selection_bounds(image)
    if not non_empty:  # without a selection the bounds are the whole image
        return False
    left, top = geometry["offset_x"], geometry["offset_y"]
    right, bottom = left + geometry["width"], top + geometry["height"]
    if min(x2, right) <= max(x1, left) or min(y2, bottom) <= max(y1, top):
        raise host.HostError("The selection does not touch the active layer: select an area "
                             "on it, or clear the selection to edit the whole layer.")
    return True


# ---------------------------------------------------------------------------------------
# One edit: export, run the worker, insert.

def edit_layer(image, layer, worker, arguments, use_selection):
    geometry = layer_geometry(layer)
    with_selection = use_selection and selection_touches(image, geometry)
    with host.Job() as job:
        export_layer(layer, geometry, job.source_path)
        if with_selection:
            export_selection(image, geometry, job.selection_path)
        job.write(arguments, geometry, source_origin=(0, 0), with_selection=with_selection)
        manifest = run_worker(worker, job)
        insert_results(image, layer, job, manifest, arguments, with_selection)


def export_layer(layer, geometry, path):
    """The layer's pixels as an 8-bit RGB(A) PNG, whatever the image's mode and depth."""
    export_drawable(layer, RGB, PRECISION_U8_GAMMA, (0, 0), geometry, path)


def export_selection(image, geometry, path):
    """The selection over the layer's pixels as a grayscale PNG the layer's size.

    The scratch image is linear like the selection itself, so a feathered edge keeps its
    values instead of going through the sRGB curve.
    """
    selection = pdb.gimp_image_get_selection(image)
    offsets = (-geometry["offset_x"], -geometry["offset_y"])
    export_drawable(selection, GRAY, PRECISION_U8_LINEAR, offsets, geometry, path)


def export_drawable(drawable, base_type, precision, offsets, geometry, path):
    """Copy a drawable into a throw-away image the layer's size, at `offsets`, and save it.

    Where the copy does not reach (a layer hanging over the canvas edge) GIMP fills with
    the context's background colour: black there means "not selected".
    """
    scratch = pdb.gimp_image_new_with_precision(geometry["width"], geometry["height"],
                                                base_type, precision)
    pdb.gimp_context_push()
    try:
        pdb.gimp_image_undo_disable(scratch)
        pdb.gimp_context_set_background((0, 0, 0))
        copy = pdb.gimp_layer_new_from_drawable(drawable, scratch)
        pdb.gimp_image_insert_layer(scratch, copy, None, 0)
        pdb.gimp_layer_set_offsets(copy, offsets[0], offsets[1])
        pdb.gimp_layer_resize_to_image_size(copy)
        # interlace, compression, bKGD, gAMA, oFFs, pHYs, tIME
        pdb.file_png_save(scratch, copy, path, path, 0, PNG_COMPRESSION, 0, 0, 0, 0, 0)
    except RuntimeError:  # pygimp's "execution error" of a failed PDB call
        raise host.HostError(  # noqa: B904 (no "raise from" in Python 2.7)
            "GPT Image Edit could not write the layer to its temporary folder: check the free "
            "disk space and try again.")
    finally:
        pdb.gimp_context_pop()
        pdb.gimp_image_delete(scratch)


def run_worker(worker, job):
    try:
        run = host.WorkerRun(worker, job)
    except OSError:
        raise host.HostError(host.NOT_INSTALLED)  # noqa: B904 (Python 2.7)
    gimp.progress_init("GPT Image Edit")
    try:
        with run:
            return run.wait(on_tick=show_progress)
    finally:
        pdb.gimp_progress_end()


def show_progress(run):
    pdb.gimp_progress_set_text(native(u"%s (%d s)" % (run.last_message, int(run.elapsed))))
    gimp.progress_update(PROGRESS_CEILING * run.elapsed / (run.elapsed + PROGRESS_HALF_SECONDS))


# ---------------------------------------------------------------------------------------
# Inserting the results.

def insert_results(image, layer, job, manifest, arguments, with_selection):
    results = sorted(manifest.get("results") or [], key=lambda entry: entry["variant"])
    if not results:
        raise host.HostError("The GPT Image Edit worker returned no picture: try again.")
    # Loaded before the undo group opens: in GIMP 2.10 even an empty group, once a result
    # turns out unreadable, leaves the image dirty.
    loaded = load_results(image, job, results)
    pdb.gimp_image_undo_group_start(image)
    try:
        place_results(image, layer, loaded, manifest, arguments, with_selection)
    finally:
        pdb.gimp_image_undo_group_end(image)


def load_results(image, job, results):
    """Every result as a layer not yet in the image, so a bad file changes nothing."""
    loaded = []
    try:
        for entry in results:
            path = os.path.join(job.output_dir, native(entry["path"]))
            loaded.append((entry, pdb.gimp_file_load_layer(image, path)))
    except RuntimeError:
        delete_floating(result for _, result in loaded)
        raise host.HostError(  # noqa: B904 (Python 2.7)
            "GPT Image Edit could not read a result of the worker: try again.")
    return loaded


def place_results(image, layer, loaded, manifest, arguments, with_selection):
    """Insert the results directly above the source layer (a group for several variants),
    at the manifest's placement, masked by the selection; on failure take them out again."""
    placement = manifest["placement"]
    name = host.layer_name(arguments["prompt"])
    parent = pdb.gimp_item_get_parent(layer)
    position = pdb.gimp_image_get_item_position(image, layer)
    inserted = []
    try:
        if len(loaded) > 1:
            group = pdb.gimp_layer_group_new(image)
            pdb.gimp_item_set_name(group, native(name))
            pdb.gimp_image_insert_layer(image, group, parent, position)
            inserted.append(group)
            parent, position = group, 0
        for index, (entry, result) in enumerate(loaded):
            label = name if len(loaded) == 1 else u"variant %d" % entry["variant"]
            pdb.gimp_item_set_name(result, native(label))
            pdb.gimp_layer_set_offsets(result, placement["x"], placement["y"])
            pdb.gimp_image_insert_layer(image, result, parent, position + index)
            inserted.append(result)
            if with_selection:  # the selection, read at the layer's place in the image
                pdb.gimp_layer_add_mask(result,
                                        pdb.gimp_layer_create_mask(result, ADD_SELECTION_MASK))
            result.parasite_attach(provenance_parasite(manifest, arguments, entry["variant"]))
    except RuntimeError:
        if inserted:  # the group, or the single layer: it takes the rest out with it
            pdb.gimp_image_remove_layer(image, inserted[0])
        delete_floating(result for _, result in loaded if result not in inserted)
        raise host.HostError(  # noqa: B904 (Python 2.7)
            "GIMP could not insert the edited layers, so the image is unchanged: try again.")


def provenance_parasite(manifest, arguments, variant):
    """Exactly the JSON bytes GIMP 3 writes: gimp.Parasite keeps the length it is given
    (attach_new_parasite would add a NUL byte)."""
    record = native(host.provenance(manifest, arguments, variant))
    return gimp.Parasite(host.PARASITE_NAME, PARASITE_PERSISTENT, record)


def delete_floating(layers):
    for floating in layers:
        pdb.gimp_item_delete(floating)


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


# ---------------------------------------------------------------------------------------
# The settings procedure.

class RunMode(object):
    """gimpfu hands a procedure without arguments no run mode: run() below notes it."""
    current = None


def gpt_image_settings():
    """Its dialog (also for Filters > Repeat); called from a script, a sentence saying
    where the settings are made."""
    if RunMode.current == RUN_NONINTERACTIVE:
        gimp.message("GPT Image Settings can only be changed in its dialog: open %s."
                     % SETTINGS_MENU)
        return
    try:
        worker = host.find_worker(LIB_DIR)
        settings_dialog.SettingsDialog(worker, SETTINGS_PROCEDURE).run()
    except host.HostError as error:
        gimp.message(native(error.args[0] if error.args else ""))


def run(proc_name, params):
    RunMode.current = params[0]
    return gimpfu._run(proc_name, params)


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
        (PF_SPINNER, "variants", "_Variants", 1, (1, MAX_VARIANTS, 1)),
        (PF_TOGGLE, "use-selection", "Use the s_election", True),
    ],
    [],
    gpt_image_edit,
    menu=MENU,
)

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

# gimpfu's main(), with the run mode noted for the settings procedure.
gimp.main(None, None, gimpfu._query, run)
