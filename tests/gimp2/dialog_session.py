"""Runs inside real GIMP 2.10 with its windows (python-fu-eval batch script, Python 2.7)
for tests/test_gimp2_dialog.py, which drives GIMP with xdotool. The test starts the
procedures as a retoucher does, from GIMP's own action search (the / key): a script cannot
open gimpfu's dialog the way the menu does (pygimp wants every argument, and gimpfu then
shows no dialog). This script opens the picture, then reports what the test asks for.

- edit: open a picture (opened.json), with a second image holding a layer "look" that
  gimpfu's remembered values name as the reference (as an earlier edit of that image
  would leave them); once the test has seen the dialog close after its OK ("confirmed"),
  report the layers and the result's provenance (edited.json); once it has pressed Ctrl+Z
  ("undo-pressed"), report again (undone.json);
- settings: open the picture (opened.json) and stay until the test is done ("finished");
- cost: open the picture (opened.json); report the layers once the test has cancelled an
  edit above the spending limit (cancelled.json) and once the one it sent all the same is
  placed, with the result's provenance record (edited.json); stay until "finished".

Environment: GIMP_TEST_STEP, GIMP_TEST_PICTURE (PNG to open), GIMP_TEST_OUT (reports).
"""

import json
import os
import time

import gimpshelf
from gimpfu import LAYER_MODE_NORMAL, RGB, RGB_IMAGE, WHITE_FILL, gimp, pdb

OUT = os.environ["GIMP_TEST_OUT"]
WAIT_SECONDS = 120


def layer_names(image):
    return [layer.name.decode("utf-8") for layer in image.layers]


def write(name, data):
    temporary = os.path.join(OUT, name + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.rename(temporary, os.path.join(OUT, name))  # the test never reads half a report


def wait_until(done):
    deadline = time.time() + WAIT_SECONDS
    while not done() and time.time() < deadline:
        time.sleep(0.2)


def marker(name):
    return lambda: os.path.exists(os.path.join(OUT, name))


def open_picture():
    path = os.environ["GIMP_TEST_PICTURE"]
    image = pdb.gimp_file_load(path, path)
    gimp.Display(image)
    gimp.displays_flush()
    pdb.gimp_image_clean_all(image)
    write("opened.json", {"layers": layer_names(image)})
    return image


def state(image):
    return {"layers": layer_names(image), "dirty": bool(pdb.gimp_image_is_dirty(image))}


def remember_a_reference_of_another_image():
    """What gimpfu keeps after an edit of another image with a reference: its last values,
    the reference among them (the entry's REFERENCE_INDEX)."""
    other = pdb.gimp_image_new(90, 60, RGB)
    look = pdb.gimp_layer_new(other, 90, 60, RGB_IMAGE, "look", 100, LAYER_MODE_NORMAL)
    pdb.gimp_image_insert_layer(other, look, None, 0)
    pdb.gimp_drawable_fill(look, WHITE_FILL)
    gimpshelf.shelf["python-fu-save--python-fu-gpt-image-edit"] = [
        other, look, "", "gpt-image-2", "auto", 3, 1, True, 0, look]


def provenance(layer):
    found = layer.parasite_find("gpt-image-edit")
    return found.data.decode("utf-8") if found else None


def step_edit():
    remember_a_reference_of_another_image()
    image = open_picture()
    source = image.layers[0]
    wait_until(marker("confirmed"))
    new = [layer for layer in image.layers if layer.ID != source.ID]
    write("edited.json", dict(state(image), new=[
        {"name": layer.name.decode("utf-8"), "size": [layer.width, layer.height],
         "parasite": provenance(layer)} for layer in new]))
    wait_until(marker("undo-pressed"))
    write("undone.json", state(image))


def step_settings():
    open_picture()
    wait_until(marker("finished"))


def step_cost():
    image = open_picture()
    wait_until(marker("cancelled"))
    write("cancelled.json", state(image))
    wait_until(marker("confirmed"))
    wait_until(lambda: len(image.layers) == 2)  # the edit sent all the same, placed
    found = image.layers[0].parasite_find("gpt-image-edit")
    write("edited.json", dict(state(image), record=json.loads(found.data) if found else None))
    wait_until(marker("finished"))


{"edit": step_edit, "settings": step_settings, "cost": step_cost}[
    os.environ["GIMP_TEST_STEP"]]()
