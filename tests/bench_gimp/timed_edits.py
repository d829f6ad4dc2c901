"""Runs inside real GIMP 3 (python-fu-eval): times plug-in-gpt-image-edit, GIMP's start excluded.

Input: $GIMP_BENCH_REQUEST, a JSON file {"out": path, "repeat": n, "cases": [{"name",
"picture", "ellipse": [x, y, w, h] or null, "prompt"}]}. It loads each case's picture and
selects its ellipse, then calls the procedure `repeat` times per case, the cases taking
turns, timing each call (export, worker, import and insert: everything the user waits
for), checks that the call succeeded and added one layer of the layer's or the region's
size, counts the worker starts the call made (lines added to $GIMP_BENCH_STARTS by the
worker's wrapper), and removes that layer again. Output: {"version", "cases": {name:
{"seconds": [...], "starts": [...], "layers": [[w, h], ...]}}} written to `out`.
"""

import json
import os
import time

from gi.repository import Gimp, Gio

PROCEDURE = "plug-in-gpt-image-edit"


def main():
    with open(os.environ["GIMP_BENCH_REQUEST"]) as handle:
        request = json.load(handle)
    cases = [open_case(case) for case in request["cases"]]
    # The cases take turns, repetition by repetition: a change of load on a shared machine
    # falls on every case alike instead of on whichever case ran then.
    for _ in range(request["repeat"]):
        for opened in cases:
            time_once(opened)
    report = {"version": Gimp.version(), "cases": {}}
    for opened in cases:
        opened["image"].delete()
        report["cases"][opened["case"]["name"]] = opened["timed"]
    with open(request["out"], "w") as handle:
        json.dump(report, handle)


def open_case(case):
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(case["picture"]))
    layer = image.get_layers()[0]
    if case["ellipse"]:
        x, y, width, height = case["ellipse"]
        image.select_ellipse(Gimp.ChannelOps.REPLACE, x, y, width, height)
    return {"case": case, "image": image, "layer": layer,
            "timed": {"seconds": [], "starts": [], "layers": []}}


def time_once(opened):
    image, layer, timed = opened["image"], opened["layer"], opened["timed"]
    image.set_selected_layers([layer])
    before = [item.get_id() for item in image.get_layers()]
    started_workers = worker_starts()
    started = time.monotonic()
    status, message = call(image, layer, opened["case"]["prompt"])
    timed["seconds"].append(time.monotonic() - started)
    timed["starts"].append(worker_starts() - started_workers)
    added = [item for item in image.get_layers() if item.get_id() not in before]
    if status != "success" or len(added) != 1:
        raise RuntimeError(f"The edit did not add one layer: {status} {message}")
    timed["layers"].append([added[0].get_width(), added[0].get_height()])
    image.remove_layer(added[0])  # the next repetition starts from the same image


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
    # The plain edit, whatever a later version's default blending (issue 13's "seamless").
    if procedure.find_argument("blend") is not None:
        config.set_property("blend", "none")
    values = procedure.run(config)
    message = values.index(1) if values.length() > 1 else ""
    return values.index(0).value_nick, message


main()
