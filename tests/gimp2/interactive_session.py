"""Runs inside real GIMP 2.10 with its windows (python-fu-eval batch script, Python 2.7)
for tests/test_gimp2_previews.py, which plays the retoucher with xdotool; the same
command protocol as tests/gimp3/interactive_session.py (tests/gimp_gui.py's Gui.ask).

The test writes OUT/command-N.json ({"do": ..., ...}); this script answers in
OUT/answer-N.json. Commands: open (a picture, in a window), state (an image's layers, the
selection, the active layer and whether undo is on), select_ellipse, quit.

Environment: GIMP_TEST_OUT (the folder of commands and answers).
"""

import json
import os
import time

from gimpfu import CHANNEL_OP_REPLACE, gimp, pdb

OUT = os.environ["GIMP_TEST_OUT"]
IDLE_SECONDS = 900  # a test that stopped talking: quit rather than hang forever
PREVIEW_PARASITE = "gpt-image-edit-preview"


def write(name, data):
    temporary = os.path.join(OUT, name + ".tmp")
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.rename(temporary, os.path.join(OUT, name))  # the test never reads half an answer


def image_by_id(number):
    found = [image for image in gimp.image_list() if image.ID == number]
    return found[0] if found else None


def describe_layer(layer):
    found = layer.parasite_find(PREVIEW_PARASITE)
    return {"name": layer.name.decode("utf-8"), "id": layer.ID, "visible": layer.visible,
            "offsets": list(layer.offsets), "size": [layer.width, layer.height],
            "mask": layer.mask is not None,
            "lock_content": bool(pdb.gimp_item_get_lock_content(layer)),
            "lock_position": bool(pdb.gimp_item_get_lock_position(layer)),
            "preview_parasite": None if found is None else
            {"persistent": bool(found.flags & 1), "undoable": bool(found.flags & 2)}}


def state(command):
    image = image_by_id(command["image"])
    if image is None:
        return {"open": False}
    non_empty, x1, y1, x2, y2 = pdb.gimp_selection_bounds(image)
    active = pdb.gimp_image_get_active_layer(image)
    return {"open": True, "dirty": bool(pdb.gimp_image_is_dirty(image)),
            "undo_enabled": bool(pdb.gimp_image_undo_is_enabled(image)),
            "layers": [describe_layer(layer) for layer in image.layers],
            "selected": [active.name.decode("utf-8")] if active is not None else [],
            "selection": [x1, y1, x2, y2] if non_empty else None}


def open_picture(command):
    image = pdb.gimp_file_load(command["path"], command["path"])
    gimp.Display(image)
    gimp.displays_flush()
    pdb.gimp_image_clean_all(image)
    return {"image": image.ID}


def select_ellipse(command):
    image = image_by_id(command["image"])
    x, y, width, height = command["box"]
    pdb.gimp_image_select_ellipse(image, CHANNEL_OP_REPLACE, x, y, width, height)
    gimp.displays_flush()
    return {}


COMMANDS = {"state": state, "open": open_picture, "select_ellipse": select_ellipse}


def serve():
    number = 0
    idle_since = time.time()
    while time.time() - idle_since < IDLE_SECONDS:
        path = os.path.join(OUT, "command-%d.json" % number)
        if not os.path.exists(path):
            time.sleep(0.1)
            continue
        with open(path) as handle:
            command = json.load(handle)
        if command["do"] == "quit":
            write("answer-%d.json" % number, {})
            return
        try:
            answer = COMMANDS[command["do"]](command)
        except Exception as error:  # the test shows it; GIMP goes on serving
            answer = {"error": repr(error)}
        write("answer-%d.json" % number, answer)
        number += 1
        idle_since = time.time()


serve()
