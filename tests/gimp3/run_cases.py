"""Runs inside real GIMP 3 (python-fu-eval): calls plug-in-gpt-image-edit on prepared images
and reports what happened, for tests/test_gimp3.py to judge.

Input: $GIMP_TEST_CASES, a JSON file {"out": folder, "config": settings path, "cases": [...]}.
Each case builds an image from a PNG, optionally selects an ellipse, writes the settings
file the worker reads (so one GIMP launch can use several fake-server scenarios), calls the
procedure non-interactively and records: the status and message, the image's state before
and after (layers, channels, open images, dirty flag, selection), the new layers (names,
offsets, sizes, masks, parasites) and PNGs of the pixels that matter, in out/<case>/.
Output: out/report.json.
"""

import json
import os
import traceback

import gi

gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio  # noqa: E402

PROCEDURE = "plug-in-gpt-image-edit"


def main():
    with open(os.environ["GIMP_TEST_CASES"]) as handle:
        request = json.load(handle)
    report = {"version": Gimp.version(), "procedure": describe_procedure(), "cases": {}}
    for case in request["cases"]:
        folder = os.path.join(request["out"], case["name"])
        os.makedirs(folder, exist_ok=True)
        try:
            report["cases"][case["name"]] = run_case(case, request["config"], folder)
        except Exception:
            report["cases"][case["name"]] = {"crash": traceback.format_exc()}
    with open(os.path.join(request["out"], "report.json"), "w") as handle:
        json.dump(report, handle, indent=1)


def describe_procedure():
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    if procedure is None:
        return None
    config = procedure.create_config()
    arguments = []
    for spec in procedure.get_arguments():
        entry = {"name": spec.name, "type": spec.value_type.name}
        if spec.name not in ("run-mode", "image", "drawables"):
            entry["default"] = to_json(config.get_property(spec.name))
        arguments.append(entry)
    return {"arguments": arguments, "menu_paths": list(procedure.get_menu_paths()),
            "menu_label": procedure.get_menu_label(),
            "settings": Gimp.get_pdb().procedure_exists(PROCEDURE + "-settings")}


def to_json(value):
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)


def run_case(case, config_path, folder):
    write_settings(config_path, case.get("settings", {}))
    image, layer = build_image(case["image"])
    select(image, case.get("selection"))
    drawables = choose_drawables(image, layer, case.get("drawables", "layer"))
    arguments = dict(case.get("arguments", {}))
    other = None
    if case.get("reference"):  # a layer of another open image, sent as the reference
        other, arguments["reference"] = build_image(case["reference"])
    export(layer, os.path.join(folder, "source-before.png"))
    dump_srgb(layer, os.path.join(folder, "source-before.rgba"))
    export_selection(image, os.path.join(folder, "selection-before.png"))
    export_visible(image, os.path.join(folder, "visible-before.png"))
    image.clean_all()
    before = snapshot(image)
    status, message = call(image, drawables, arguments, case.get("run_mode"))
    after = snapshot(image)
    export(layer, os.path.join(folder, "source-after.png"))
    export_selection(image, os.path.join(folder, "selection-after.png"))
    export_visible(image, os.path.join(folder, "visible.png"))
    new_layers = [describe_layer(item, folder) for item in image.get_layers()
                  if item.get_id() not in before["layer_ids"]]
    result = {"status": status, "message": message, "before": before, "after": after,
              "new_layers": new_layers, "source_id": layer.get_id(),
              "source_offsets": offsets(layer)}
    image.delete()
    if other is not None:
        other.delete()
    return result


def write_settings(path, settings):
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(settings, handle)
    os.chmod(path, 0o600)


def build_image(spec):
    """A canvas of spec["canvas"] holding the PNG spec["source"] as one layer at
    spec["offsets"], then converted to spec["mode"]."""
    width, height = spec["canvas"]
    image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    layer = Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                                 Gio.File.new_for_path(spec["source"]))
    layer.set_name(spec.get("name", "source"))
    image.insert_layer(layer, None, 0)
    layer.set_offsets(*spec["offsets"])
    mode = spec.get("mode", "rgb")
    if mode == "gray":
        image.convert_grayscale()
    elif mode == "u16":
        image.convert_precision(Gimp.Precision.U16_NON_LINEAR)
    elif mode == "float_linear":
        image.convert_precision(Gimp.Precision.FLOAT_LINEAR)
    elif mode == "u16_linear":
        image.convert_precision(Gimp.Precision.U16_LINEAR)
    if spec.get("profile"):  # another colour space: the pixels converted into it
        if spec.get("profile_precision"):
            image.convert_precision(getattr(Gimp.Precision, spec["profile_precision"]))
        profile = Gimp.ColorProfile.new_from_file(Gio.File.new_for_path(spec["profile"]))
        image.convert_color_profile(profile, Gimp.ColorRenderingIntent.RELATIVE_COLORIMETRIC,
                                    True)
    elif mode == "indexed":
        image.convert_indexed(Gimp.ConvertDitherType.NONE, Gimp.ConvertPaletteType.GENERATE,
                              255, False, False, "")
    if spec.get("above"):  # a layer over the source: the result must go between them
        above = Gimp.Layer.new(image, "above", 20, 20, layer_type(image), 100,
                               Gimp.LayerMode.NORMAL)
        image.insert_layer(above, None, 0)
        above.fill(Gimp.FillType.WHITE)
    image.set_selected_layers([layer])
    return image, layer


def layer_type(image):
    base = image.get_base_type()
    if base == Gimp.ImageBaseType.GRAY:
        return Gimp.ImageType.GRAY_IMAGE
    if base == Gimp.ImageBaseType.INDEXED:
        return Gimp.ImageType.INDEXED_IMAGE
    return Gimp.ImageType.RGB_IMAGE


def select(image, spec):
    if not spec:
        Gimp.Selection.none(image)
        return
    x, y, width, height = spec["ellipse"]
    image.select_ellipse(Gimp.ChannelOps.REPLACE, x, y, width, height)
    if spec.get("feather"):
        Gimp.Selection.feather(image, spec["feather"])


def choose_drawables(image, layer, which):
    if which == "none":
        return []
    if which == "two":
        other = Gimp.Layer.new(image, "other", 10, 10, layer_type(image), 100,
                               Gimp.LayerMode.NORMAL)
        image.insert_layer(other, None, 0)
        return [layer, other]
    if which == "mask":  # the user is painting the source layer's mask
        mask = layer.create_mask(Gimp.AddMaskType.WHITE)
        layer.add_mask(mask)
        return [mask]
    if which == "group":
        group = Gimp.GroupLayer.new(image, "group")
        image.insert_layer(group, None, 0)
        return [group]
    return [layer]


def call(image, drawables, arguments, run_mode=None):
    """The procedure, non-interactively (or as Filters > Repeat runs it: "with-last-vals")."""
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.WITH_LAST_VALS if run_mode == "with-last-vals"
                        else Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", drawables)
    for name, value in arguments.items():
        config.set_property(name, value)
    values = procedure.run(config)
    status = values.index(0)
    message = values.index(1) if values.length() > 1 else ""
    return status.value_nick, message if isinstance(message, str) else str(message)


def snapshot(image):
    """What a user could notice changed: layers, channels, open images, dirty, selection."""
    _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    return {"layers": tree(image.get_layers()),
            "layer_ids": [item.get_id() for item in image.get_layers()],
            "channels": len(image.get_channels()),
            "images": len(Gimp.get_images()),
            "dirty": image.is_dirty(),
            "selection": [non_empty, x1, y1, x2, y2] if non_empty else None,
            "selected": [item.get_id() for item in image.get_selected_layers()]}


def tree(items):
    return [{"name": item.get_name(), "offsets": offsets(item), "size": size(item),
             "children": tree(item.get_children()) if item.is_group() else None}
            for item in items]


def offsets(item):
    values = item.get_offsets()
    return [values[-2], values[-1]]


def size(item):
    return [item.get_width(), item.get_height()]


def describe_layer(item, folder):
    """A new layer or group, its pixels and mask exported as PNGs named after its id."""
    parasite = item.get_parasite("gpt-image-edit")
    entry = {"name": item.get_name(), "id": item.get_id(), "offsets": offsets(item),
             "size": size(item), "is_group": item.is_group(),
             "parasite": bytes(parasite.get_data()).decode("utf-8") if parasite else None,
             "persistent": bool(parasite and parasite.get_flags() & Gimp.PARASITE_PERSISTENT),
             "base": base_type(item), "mask": None, "children": []}
    if item.is_group():
        entry["children"] = [describe_layer(child, folder) for child in item.get_children()]
        return entry
    export(item, os.path.join(folder, f"layer-{item.get_id()}.png"), without_mask=True)
    if item.get_mask() is not None:
        entry["mask"] = f"mask-{item.get_id()}.png"
        export(item.get_mask(), os.path.join(folder, entry["mask"]), gray=True)
    entry["pixels"] = f"layer-{item.get_id()}.png"
    dump_srgb(item, os.path.join(folder, f"layer-{item.get_id()}.rgba"))
    return entry


def base_type(drawable):
    if drawable.is_indexed():
        return "indexed"
    return "gray" if drawable.is_gray() else "rgb"


def export(drawable, path, without_mask=False, gray=False):
    """The drawable's own pixels (8 bit, RGB(A) or gray) as a PNG of its size."""
    base = Gimp.ImageBaseType.GRAY if gray else Gimp.ImageBaseType.RGB
    scratch = Gimp.Image.new(drawable.get_width(), drawable.get_height(), base)
    scratch.undo_disable()
    copy = Gimp.Layer.new_from_drawable(drawable, scratch)
    scratch.insert_layer(copy, None, 0)
    copy.set_offsets(0, 0)
    if without_mask and copy.get_mask() is not None:
        copy.remove_mask(Gimp.MaskApplyMode.DISCARD)
    save(scratch, path)


def dump_srgb(drawable, path):
    """The drawable's pixels as GEGL converts them to 8-bit sRGB R'G'B'A (its own space and
    precision to sRGB), raw: what the result is compared with the source by."""
    width, height = drawable.get_width(), drawable.get_height()
    pixels = drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, width, height), 1.0,
                                       "R'G'B'A u8", Gegl.AbyssPolicy.NONE)
    with open(path, "wb") as handle:
        handle.write(bytes(pixels))


def export_selection(image, path):
    export(image.get_selection(), path, gray=True)


def export_visible(image, path):
    scratch = Gimp.Image.new(image.get_width(), image.get_height(), Gimp.ImageBaseType.RGB)
    scratch.undo_disable()
    visible = Gimp.Layer.new_from_visible(image, scratch, "visible")
    scratch.insert_layer(visible, None, 0)
    save(scratch, path)


def save(scratch, path):
    try:
        Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, scratch, Gio.File.new_for_path(path), None)
    finally:
        scratch.delete()


main()
