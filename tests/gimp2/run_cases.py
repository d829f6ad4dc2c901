# -*- coding: utf-8 -*-
"""Runs inside real GIMP 2.10 (python-fu-eval, Python 2.7): calls python-fu-gpt-image-edit
through the PDB on prepared images and reports what happened, for tests/test_gimp2_real.py
to judge. The GIMP 2.10 twin of tests/gimp3/run_cases.py.

Input: $GIMP_TEST_CASES, a JSON file {"out": folder, "config": settings path, "cases": [...]}.
Each case builds an image from a PNG, optionally selects an ellipse, writes the settings
file the worker reads (so one GIMP launch reaches several fake-server scenarios), calls the
procedure non-interactively and records the image's state before and after, the new layers
(names, offsets, sizes, masks, parasites) and PNGs of the pixels that matter, in
out/<case>/. A gimpfu procedure has no error return: its sentence goes to gimp.message,
which GIMP prints on its standard error; each case is framed there by CASE_BEGIN/CASE_END
lines so the test can tell whose messages are whose.
Output: out/report.json.
"""

import json
import os
import sys
import traceback

from gimpfu import (
    CHANNEL_OP_REPLACE,
    GRAY,
    GRAY_IMAGE,
    INDEXED,
    INDEXED_IMAGE,
    LAYER_MODE_NORMAL,
    PARASITE_PERSISTENT,
    PARASITE_UNDOABLE,
    PRECISION_FLOAT_LINEAR,
    PRECISION_U8_GAMMA,
    PRECISION_U16_GAMMA,
    PRECISION_U16_LINEAR,
    RGB,
    RGB_IMAGE,
    RUN_NONINTERACTIVE,
    WHITE_FILL,
    gimp,
    pdb,
)

PROCEDURE = "python-fu-gpt-image-edit"
PARASITE = "gpt-image-edit"
CASE_BEGIN = "@@gpt-image-edit-case-begin %s\n"
CASE_END = "@@gpt-image-edit-case-end %s\n"
MASK_DISCARD = 1
QUALITIES = ("auto", "low", "medium", "high")
BLENDS = ("seamless", "feather", "none")  # the entry's PF_OPTION, by index
DEFAULTS = {"model": "gpt-image-2", "size": "auto", "quality": "high", "variants": 1,
            "use-selection": True, "blend": "none"}
PRECISIONS = {"U16_NON_LINEAR": PRECISION_U16_GAMMA}


def main():
    with open(os.environ["GIMP_TEST_CASES"]) as handle:
        request = json.load(handle)
    report = {"version": list(gimp.version), "procedure": describe_procedure(PROCEDURE),
              "settings_procedure": describe_procedure(PROCEDURE + "-settings"),
              "cases": {}}
    for case in request["cases"]:
        folder = os.path.join(request["out"], case["name"])
        if not os.path.isdir(folder):
            os.makedirs(folder)
        sys.stderr.write(CASE_BEGIN % case["name"])
        try:
            report["cases"][case["name"]] = run_case(case, request["config"], folder)
        except Exception:
            report["cases"][case["name"]] = {"crash": traceback.format_exc()}
        sys.stderr.write(CASE_END % case["name"])
    # Called from a script, the settings procedure says where the settings are made.
    sys.stderr.write(CASE_BEGIN % "settings_from_a_script")
    pdb.python_fu_gpt_image_edit_settings(run_mode=RUN_NONINTERACTIVE)
    sys.stderr.write(CASE_END % "settings_from_a_script")
    with open(os.path.join(request["out"], "report.json"), "w") as handle:
        json.dump(report, handle, indent=1)


def describe_procedure(name):
    if not pdb.gimp_procedural_db_proc_exists(name):
        return None
    info = pdb.gimp_procedural_db_proc_info(name)
    arguments = [pdb.gimp_procedural_db_proc_arg(name, index)[1] for index in range(info[6])]
    return {"blurb": info[0], "arguments": arguments, "values": info[7]}


def run_case(case, config_path, folder):
    write_settings(config_path, case.get("settings", {}))
    image, layer = build_image(case["image"])
    select(image, case.get("selection"))
    drawable = choose_drawable(image, layer, case.get("drawables", "layer"))
    other, reference = None, case.get("reference")
    if isinstance(reference, dict):  # a layer of another open image, sent as the reference
        other, reference = build_image(reference)
    elif reference == "itself":  # the dialog's way of saying "no reference"
        reference = drawable
    export(layer, os.path.join(folder, "source-before.png"))
    dump_srgb(layer, os.path.join(folder, "source-before.rgba"))
    export_selection(image, os.path.join(folder, "selection-before.png"))
    export_visible(image, os.path.join(folder, "visible-before.png"))
    pdb.gimp_image_clean_all(image)
    before = snapshot(image)
    status, error = call(image, drawable, case.get("arguments", {}), reference)
    after = snapshot(image)
    export(layer, os.path.join(folder, "source-after.png"))
    export_selection(image, os.path.join(folder, "selection-after.png"))
    export_visible(image, os.path.join(folder, "visible.png"))
    new_layers = [describe_layer(item, folder) for item in image.layers
                  if item.ID not in before["layer_ids"]]
    result = {"status": status, "error": error, "before": before, "after": after,
              "new_layers": new_layers, "source_id": layer.ID,
              "source_offsets": list(layer.offsets)}
    if case.get("save_xcf"):
        path = os.path.join(folder, "saved.xcf")
        pdb.gimp_xcf_save(0, image, layer, path, path)
        result["xcf"] = path
    pdb.gimp_image_delete(image)
    if other is not None:
        pdb.gimp_image_delete(other)
    return result


def write_settings(path, settings):
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder)
    with open(path, "w") as handle:
        json.dump(settings, handle)
    os.chmod(path, 0o600)


def build_image(spec):
    """A canvas of spec["canvas"] holding the PNG spec["source"] as one layer at
    spec["offsets"], then converted to spec["mode"]."""
    width, height = spec["canvas"]
    image = pdb.gimp_image_new(width, height, RGB)
    layer = pdb.gimp_file_load_layer(image, spec["source"])
    pdb.gimp_item_set_name(layer, spec.get("name", "source"))
    pdb.gimp_image_insert_layer(image, layer, None, 0)
    pdb.gimp_layer_set_offsets(layer, *spec["offsets"])
    mode = spec.get("mode", "rgb")
    if mode == "gray":
        pdb.gimp_image_convert_grayscale(image)
    elif mode == "u16":
        pdb.gimp_image_convert_precision(image, PRECISION_U16_GAMMA)
    elif mode == "float_linear":
        pdb.gimp_image_convert_precision(image, PRECISION_FLOAT_LINEAR)
    elif mode == "u16_linear":
        pdb.gimp_image_convert_precision(image, PRECISION_U16_LINEAR)
    if spec.get("profile"):  # another colour space: the pixels converted into it
        if spec.get("profile_precision"):
            pdb.gimp_image_convert_precision(image, PRECISIONS[spec["profile_precision"]])
        with open(spec["profile"], "rb") as handle:
            profile = [ord(byte) for byte in handle.read()]
        # (gimp-image-convert-color-profile-from-file fails in gimp-console 2.10.22.)
        pdb.gimp_image_convert_color_profile(image, len(profile), profile, 1, True)
    elif mode == "indexed":
        pdb.gimp_image_convert_indexed(image, 0, 0, 255, False, False, "")  # no dither, generate
    if spec.get("above"):  # a layer over the source: the result must go between them
        above = pdb.gimp_layer_new(image, 20, 20, layer_type(image), "above", 100,
                                   LAYER_MODE_NORMAL)
        pdb.gimp_image_insert_layer(image, above, None, 0)
        pdb.gimp_drawable_fill(above, WHITE_FILL)
    pdb.gimp_image_set_active_layer(image, layer)
    return image, layer


def layer_type(image):
    base = pdb.gimp_image_base_type(image)
    return {GRAY: GRAY_IMAGE, INDEXED: INDEXED_IMAGE}.get(base, RGB_IMAGE)


def select(image, spec):
    if not spec:
        pdb.gimp_selection_none(image)
        return
    x, y, width, height = spec["ellipse"]
    pdb.gimp_image_select_ellipse(image, CHANNEL_OP_REPLACE, x, y, width, height)
    if spec.get("feather"):
        pdb.gimp_selection_feather(image, spec["feather"])


def choose_drawable(image, layer, which):
    """What the procedure is handed: the layer, a channel, a layer group or the layer's
    mask (GIMP 2.10 passes one drawable, the active one)."""
    if which == "channel":
        channel = pdb.gimp_channel_new(image, 10, 10, "channel", 50, (0, 0, 0))
        pdb.gimp_image_insert_channel(image, channel, None, 0)
        return channel
    if which == "group":
        group = pdb.gimp_layer_group_new(image)
        pdb.gimp_item_set_name(group, "group")
        pdb.gimp_image_insert_layer(image, group, None, 0)
        return group
    if which == "in_group":  # the layer moved into a group, below another layer there
        group = pdb.gimp_layer_group_new(image)
        pdb.gimp_item_set_name(group, "group")
        pdb.gimp_image_insert_layer(image, group, None, 0)
        pdb.gimp_image_reorder_item(image, layer, group, 0)
        other = pdb.gimp_layer_new(image, 20, 20, layer_type(image), "other", 100,
                                   LAYER_MODE_NORMAL)
        pdb.gimp_image_insert_layer(image, other, group, 0)
        pdb.gimp_image_set_active_layer(image, layer)
        return layer
    if which == "mask":
        mask = pdb.gimp_layer_create_mask(layer, 0)  # white: everything shows
        pdb.gimp_layer_add_mask(layer, mask)
        return mask
    return layer


def call(image, drawable, arguments, reference=None):
    """The procedure through the PDB, as a script calls it: with every argument, or (the
    case's "older_script") with the arguments from before blend and reference."""
    values = dict(DEFAULTS, **arguments)
    positional = [image, drawable, values["prompt"].encode("utf-8"), values["model"],
                  values["size"], QUALITIES.index(values["quality"]), values["variants"],
                  values["use-selection"]]
    if not values.get("older_script"):
        positional += [BLENDS.index(values["blend"]), reference]
    try:
        pdb.python_fu_gpt_image_edit(*positional, run_mode=RUN_NONINTERACTIVE)
    except (RuntimeError, TypeError) as error:  # a PDB error: the plug-in crashed
        return "execution-error", str(error)
    return "success", None


def snapshot(image):
    """What a user could notice changed: layers, channels, open images, dirty, selection."""
    non_empty, x1, y1, x2, y2 = pdb.gimp_selection_bounds(image)
    active = pdb.gimp_image_get_active_drawable(image)
    return {"layers": tree(image.layers),
            "layer_ids": [item.ID for item in image.layers],
            "channels": len(image.channels),
            "images": len(gimp.image_list()),
            "dirty": bool(pdb.gimp_image_is_dirty(image)),
            "selection": [bool(non_empty), x1, y1, x2, y2] if non_empty else None,
            "selected": [active.ID] if active else []}


def tree(items):
    return [{"name": item.name.decode("utf-8"), "offsets": list(item.offsets),
             "size": [item.width, item.height],
             "children": tree(item.layers) if pdb.gimp_item_is_group(item) else None}
            for item in items]


def describe_layer(item, folder):
    """A new layer or group, its pixels and mask exported as PNGs named after its id."""
    parasite = item.parasite_find(PARASITE)
    is_group = bool(pdb.gimp_item_is_group(item))
    entry = {"name": item.name.decode("utf-8"), "id": item.ID, "offsets": list(item.offsets),
             "size": [item.width, item.height], "is_group": is_group,
             "parasite": parasite.data.decode("utf-8") if parasite else None,
             "persistent": bool(parasite and parasite.flags & PARASITE_PERSISTENT),
             "undoable": bool(parasite and parasite.flags & PARASITE_UNDOABLE),
             "base": base_type(item), "precision": pdb.gimp_image_get_precision(item.image),
             "mask": None, "children": []}
    if is_group:
        entry["children"] = [describe_layer(child, folder) for child in item.layers]
        return entry
    export(item, os.path.join(folder, "layer-%d.png" % item.ID), without_mask=True)
    if item.mask is not None:
        entry["mask"] = "mask-%d.png" % item.ID
        export(item.mask, os.path.join(folder, entry["mask"]), gray=True)
    entry["pixels"] = "layer-%d.png" % item.ID
    dump_srgb(item, os.path.join(folder, "layer-%d.rgba" % item.ID))
    return entry


def base_type(drawable):
    if pdb.gimp_drawable_is_indexed(drawable):
        return "indexed"
    return "gray" if pdb.gimp_drawable_is_gray(drawable) else "rgb"


def export(drawable, path, without_mask=False, gray=False):
    """The drawable's own pixels (8 bit, RGB(A) or gray) as a PNG of its size."""
    scratch = pdb.gimp_image_new(drawable.width, drawable.height, GRAY if gray else RGB)
    pdb.gimp_image_undo_disable(scratch)
    copy = pdb.gimp_layer_new_from_drawable(drawable, scratch)
    pdb.gimp_image_insert_layer(scratch, copy, None, 0)
    pdb.gimp_layer_set_offsets(copy, 0, 0)
    if without_mask and copy.mask is not None:
        pdb.gimp_layer_remove_mask(copy, MASK_DISCARD)
    save(scratch, copy, path)


def dump_srgb(drawable, path):
    """The drawable's pixels in 8-bit sRGB RGBA, raw: as GIMP converts a copy of it into an
    8-bit image in its built-in sRGB (pixel regions read stored values)."""
    scratch = pdb.gimp_image_new_with_precision(drawable.width, drawable.height, RGB,
                                                PRECISION_U8_GAMMA)
    try:
        pdb.gimp_image_undo_disable(scratch)
        copy = pdb.gimp_layer_new_from_drawable(drawable, scratch)
        pdb.gimp_image_insert_layer(scratch, copy, None, 0)
        pdb.gimp_layer_set_offsets(copy, 0, 0)
        if copy.mask is not None:
            pdb.gimp_layer_remove_mask(copy, MASK_DISCARD)
        pdb.gimp_layer_add_alpha(copy)
        pixels = copy.get_pixel_rgn(0, 0, copy.width, copy.height, False, False)[
            0:copy.width, 0:copy.height]
        with open(path, "wb") as handle:
            handle.write(pixels)
    finally:
        pdb.gimp_image_delete(scratch)


def export_selection(image, path):
    export(pdb.gimp_image_get_selection(image), path, gray=True)


def export_visible(image, path):
    scratch = pdb.gimp_image_new(image.width, image.height, RGB)
    pdb.gimp_image_undo_disable(scratch)
    visible = pdb.gimp_layer_new_from_visible(image, scratch, "visible")
    pdb.gimp_image_insert_layer(scratch, visible, None, 0)
    save(scratch, visible, path)


def save(scratch, layer, path):
    try:
        pdb.file_png_save(scratch, layer, path, path, 0, 1, 0, 0, 0, 0, 0)
    finally:
        pdb.gimp_image_delete(scratch)


main()
