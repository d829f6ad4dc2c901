"""Runs inside real GIMP 3 (python-fu-eval): times plug-in-gpt-image-edit, GIMP's start excluded.

Input: $GIMP_BENCH_REQUEST, a JSON file {"out": path, "repeat": n, "cases": [{"name",
"picture", "ellipse": [x, y, w, h] or null, "prompt"}]}. For each case it loads the picture,
selects the ellipse, then calls the procedure `repeat` times, timing each call (export,
worker, import and insert: everything the user waits for), checks that the call succeeded
and added one layer of the layer's or the region's size, counts the worker starts the call
made (lines added to $GIMP_BENCH_STARTS by the worker's wrapper), and removes that layer
again. Output: {"version", "cases": {name: {"seconds": [...], "starts": [...], "layers":
[[w, h], ...]}}} written to `out`.
"""

import json
import os
import time

from gi.repository import Gimp, Gio

PROCEDURE = "plug-in-gpt-image-edit"


def main():
    with open(os.environ["GIMP_BENCH_REQUEST"]) as handle:
        request = json.load(handle)
    report = {"version": Gimp.version(), "cases": {}}
    for case in request["cases"]:
        report["cases"][case["name"]] = time_case(case, request["repeat"])
    with open(request["out"], "w") as handle:
        json.dump(report, handle)


def time_case(case, repeat):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["picture"]))
    layer = image.get_layers()[0]
    image.set_selected_layers([layer])
    if case["ellipse"]:
        x, y, width, height = case["ellipse"]
        image.select_ellipse(Gimp.ChannelOps.REPLACE, x, y, width, height)
    seconds, layers, starts = [], [], []
    for _ in range(repeat):
        before = [item.get_id() for item in image.get_layers()]
        started_workers = worker_starts()
        started = time.monotonic()
        status, message = call(image, layer, case["prompt"])
        seconds.append(time.monotonic() - started)
        starts.append(worker_starts() - started_workers)
        added = [item for item in image.get_layers() if item.get_id() not in before]
        if status != "success" or len(added) != 1:
            raise RuntimeError(f"The edit did not add one layer: {status} {message}")
        layers.append([added[0].get_width(), added[0].get_height()])
        image.remove_layer(added[0])  # the next repetition starts from the same image
    image.delete()
    return {"seconds": seconds, "starts": starts, "layers": layers}


def worker_starts():
    with open(os.environ["GIMP_BENCH_STARTS"]) as handle:
        return len(handle.read().splitlines())


def call(image, layer, prompt):
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    if procedure is None:
        raise RuntimeError(PROCEDURE + " is not installed in this GIMP.")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [layer])
    config.set_property("prompt", prompt)
    config.set_property("blend", "none")  # the plain edit: blending is measured on its own
    values = procedure.run(config)
    message = values.index(1) if values.length() > 1 else ""
    return values.index(0).value_nick, message


main()
