"""Runs inside real GIMP 3 with its windows (python-fu-eval batch script) for
tests/test_gimp3_dialog.py, which drives the dialogs with xdotool. One step a launch:

- edit: open a picture, run plug-in-gpt-image-edit interactively, report the layers
  (edited.json), wait until the test has pressed Ctrl+Z, report again (undone.json). A
  second image with a layer "look" is open, and the call hands it over as the reference
  (as remembered values would): the dialog must not send it unless chosen;
- edit_reference: the same, without the handed reference: the test chooses it;
- cancel: the same, the test presses Cancel while the worker waits (cancelled.json);
- settings: run plug-in-gpt-image-edit-settings interactively (settings.json).

Environment: GIMP_TEST_STEP, GIMP_TEST_PICTURE (PNG to open), GIMP_TEST_OUT (reports).
"""

import json
import os
import time

from gi.repository import Gimp, Gio

OUT = os.environ["GIMP_TEST_OUT"]
WAIT_SECONDS = 120


def layer_names(image):
    return [layer.get_name() for layer in image.get_layers()]


def write(name, data):
    temporary = os.path.join(OUT, name + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, os.path.join(OUT, name))  # the test never reads half a report


def wait_for(name):
    deadline = time.time() + WAIT_SECONDS
    while not os.path.exists(os.path.join(OUT, name)) and time.time() < deadline:
        time.sleep(0.2)


def open_picture():
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE,
                           Gio.File.new_for_path(os.environ["GIMP_TEST_PICTURE"]))
    Gimp.Display.new(image)
    Gimp.displays_flush()
    image.clean_all()
    return image


def look_image():
    """Another open image, its one layer named "look": a reference to choose."""
    image = Gimp.Image.new(90, 60, Gimp.ImageBaseType.RGB)
    layer = Gimp.Layer.new(image, "look", 90, 60, Gimp.ImageType.RGB_IMAGE, 100,
                           Gimp.LayerMode.NORMAL)
    image.insert_layer(layer, None, 0)
    layer.fill(Gimp.FillType.WHITE)
    return layer


def run_edit(image, reference=None):
    source = image.get_layers()[0]
    procedure = Gimp.get_pdb().lookup_procedure("plug-in-gpt-image-edit")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [source])
    if reference is not None:
        config.set_property("reference", reference)
    values = procedure.run(config)
    new = [layer for layer in image.get_layers() if layer.get_id() != source.get_id()]
    return {"status": values.index(0).value_nick, "layers": layer_names(image),
            "dirty": image.is_dirty(),
            "new": [{"name": layer.get_name(), "size": [layer.get_width(), layer.get_height()],
                     "parasite": parasite_text(layer)} for layer in new]}


def parasite_text(layer):
    found = layer.get_parasite("gpt-image-edit")
    if found is None:
        return None
    data = found.get_data()
    return bytes(data[0] if isinstance(data, tuple) else data).decode("utf-8")


def step_edit():
    look = look_image()
    image = open_picture()
    write("edited.json", run_edit(image, reference=look))
    wait_for("undo-pressed")
    write("undone.json", {"layers": layer_names(image), "dirty": image.is_dirty()})


def step_edit_reference():
    look_image()
    image = open_picture()
    write("edited.json", run_edit(image))


def step_cancel():
    write("cancelled.json", run_edit(open_picture()))


def step_settings():
    procedure = Gimp.get_pdb().lookup_procedure("plug-in-gpt-image-edit-settings")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    write("settings.json", {"status": procedure.run(config).index(0).value_nick})


{"edit": step_edit, "edit_reference": step_edit_reference, "cancel": step_cancel,
 "settings": step_settings}[
    os.environ["GIMP_TEST_STEP"]]()
