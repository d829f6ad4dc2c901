"""Runs inside real GIMP 3 with its windows (python-fu-eval batch script) for
tests/test_gimp3_interactive.py, which plays the retoucher with xdotool. This script only
sets scenes up and reports what GIMP holds; the edits themselves are started, watched,
cancelled and undone through GIMP's windows.

The test writes OUT/command-N.json ({"do": ..., ...}); this script answers in
OUT/answer-N.json. Commands: open (a picture, in a window), state (an image's layers,
masks, selection, selected layers and whether undo is on), images (every open image),
select_ellipse, select_layer, save (as XCF), file_layers (of a saved file), quit.

Environment: GIMP_TEST_OUT (the folder of commands and answers).
"""

import json
import os
import time

from gi.repository import Gegl, Gimp, Gio

OUT = os.environ["GIMP_TEST_OUT"]
IDLE_SECONDS = 900  # a test that stopped talking: quit rather than hang forever


def write(name, data):
    temporary = os.path.join(OUT, name + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, os.path.join(OUT, name))  # the test never reads half an answer


def image_by_id(number):
    return Gimp.Image.get_by_id(number)


def mask_summary(mask):
    """How much of the mask shows the layer: its mean and extremes (0-255)."""
    width, height = mask.get_width(), mask.get_height()
    pixels = mask.get_buffer().get(Gegl.Rectangle.new(0, 0, width, height), 1.0, "Y u8",
                                   Gegl.AbyssPolicy.NONE)
    counts = [0] * 256
    for value in pixels:
        counts[value] += 1
    present = [value for value, count in enumerate(counts) if count]
    total = sum(value * count for value, count in enumerate(counts))
    return {"mean": round(total / float(width * height), 2), "min": present[0],
            "max": present[-1]}


def parasite_record(item):
    found = item.get_parasite("gpt-image-edit")
    if found is None:
        return None
    data = found.get_data()
    if isinstance(data, tuple):
        data = data[0]
    return {"text": bytes(data).decode("utf-8"), "flags": found.get_flags()}


def describe_layer(layer):
    mask = layer.get_mask()
    offsets = layer.get_offsets()
    return {"name": layer.get_name(), "id": layer.get_id(), "visible": layer.get_visible(),
            "offsets": [offsets[-2], offsets[-1]],
            "size": [layer.get_width(), layer.get_height()],
            "is_group": isinstance(layer, Gimp.GroupLayer),
            "children": [describe_layer(child) for child in layer.get_children()]
            if isinstance(layer, Gimp.GroupLayer) else [],
            "mask": mask_summary(mask) if mask is not None else None,
            "edit_mask": layer.get_edit_mask() if mask is not None else False,
            "parasite": parasite_record(layer)}


def state(command):
    image = image_by_id(command["image"])
    if image is None or not image.is_valid():
        return {"open": False}
    _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    return {"open": True, "name": image.get_name(), "dirty": image.is_dirty(),
            "undo_enabled": image.undo_is_enabled(),
            "layers": [describe_layer(layer) for layer in image.get_layers()],
            "selected": [item.get_name() for item in image.get_selected_layers()],
            "selected_drawables": [
                {"name": item.get_name(), "is_mask": isinstance(item, Gimp.LayerMask)}
                for item in image.get_selected_drawables()],
            "selection": [x1, y1, x2, y2] if non_empty else None}


def images(command):
    return {"images": [{"id": image.get_id(), "name": image.get_name(),
                        "layers": [describe_layer(layer) for layer in image.get_layers()]}
                       for image in Gimp.get_images()]}


def open_picture(command):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE,
                           Gio.File.new_for_path(command["path"]))
    Gimp.Display.new(image)
    Gimp.displays_flush()
    image.clean_all()
    return {"image": image.get_id()}


def select_ellipse(command):
    image = image_by_id(command["image"])
    x, y, width, height = command["box"]
    image.select_ellipse(Gimp.ChannelOps.REPLACE, x, y, width, height)
    Gimp.displays_flush()
    return {}


def select_layer(command):
    image = image_by_id(command["image"])
    chosen = [layer for layer in image.get_layers() if layer.get_name() == command["name"]]
    image.set_selected_layers(chosen)
    Gimp.displays_flush()
    return {"selected": len(chosen)}


def save(command):
    """What File > Save does: the image as XCF (a retoucher saving while an edit waits)."""
    image = image_by_id(command["image"])
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(command["path"]),
                   None)
    return {}


def file_layers(command):
    """The layers a saved file holds, top first (the file opened without a window)."""
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(command["path"]))
    try:
        return {"layers": [describe_layer(layer) for layer in image.get_layers()]}
    finally:
        image.delete()


COMMANDS = {"state": state, "images": images, "open": open_picture,
            "select_ellipse": select_ellipse, "select_layer": select_layer, "save": save,
            "file_layers": file_layers}


def serve():
    number = 0
    idle_since = time.time()
    while time.time() - idle_since < IDLE_SECONDS:
        path = os.path.join(OUT, f"command-{number}.json")
        if not os.path.exists(path):
            time.sleep(0.1)
            continue
        with open(path) as handle:
            command = json.load(handle)
        if command["do"] == "quit":
            write(f"answer-{number}.json", {})
            return
        try:
            answer = COMMANDS[command["do"]](command)
        except Exception as error:  # the test shows it; GIMP goes on serving
            answer = {"error": repr(error)}
        write(f"answer-{number}.json", answer)
        number += 1
        idle_since = time.time()


serve()
