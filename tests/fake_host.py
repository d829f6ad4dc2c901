"""A fake GIMP for the host core: a Document over Pillow images, with a layer stack, a
selection, an undo log and GIMP's progress, so the core's scenarios run in milliseconds.

It answers as both GIMPs do (offsets, bounds with x2/y2 exclusive, a new layer not yet in
the image until inserted, masks made from the selection where the layer lies) and records
what a retoucher would see. The same scenarios run in real GIMP 3 (tests/test_gimp3.py)
and GIMP 2.10 (tests/test_gimp2.py); tests/host_policies.py holds what they share.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "plugin" / "gpt-image-edit"))
import gpt_image_edit_core as core  # noqa: E402

_tattoos = itertools.count(1)


class Item:
    def __init__(self, kind: str, name: str, pixels: Image.Image | None = None,
                 offsets=(0, 0)):
        self.kind = kind  # layer, group, layer_mask, channel
        self.name = name
        self.pixels = pixels
        self.offsets = tuple(offsets)
        self.mask: Image.Image | None = None
        self.parasites: dict[str, str] = {}
        self.children: list[Item] = []
        self.owner: Item | None = None  # a layer mask's layer
        self.inserted = False
        self.deleted = False
        self.visible = True
        self.tattoo = next(_tattoos)

    @property
    def size(self):
        return self.pixels.size if self.pixels is not None else (0, 0)

    def __repr__(self):
        return f"<{self.kind} {self.name!r}>"


class FakeImage:
    def __init__(self, size, background=(40, 90, 160)):
        self.size = tuple(size)
        self.layers: list[Item] = []  # top first
        self.selection = Image.new("L", self.size)
        self.selected: list[Item] = []
        self.undo_log: list[tuple] = []
        self.undo_depth = 0
        self.name = "picture.png"
        self.open = True
        if background is not None:
            self.add_layer(Item("layer", "background", Image.new("RGB", self.size, background)))

    def add_layer(self, item: Item, parent: Item | None = None, position: int = 0) -> Item:
        siblings = self.layers if parent is None else parent.children
        siblings.insert(position, item)
        item.inserted = True
        return item

    def siblings(self, item: Item) -> list[Item]:
        if item in self.layers:
            return self.layers
        for group in self.all_layers():
            if item in group.children:
                return group.children
        raise ValueError(f"{item} is not in the image")

    def parent(self, item: Item) -> Item | None:
        for group in self.all_layers():
            if item in group.children:
                return group
        return None

    def all_layers(self) -> list[Item]:
        found = []

        def walk(items):
            for item in items:
                found.append(item)
                walk(item.children)

        walk(self.layers)
        return found

    def names(self) -> list[str]:
        return [item.name for item in self.layers]

    def snapshot(self) -> list:
        def describe(item):
            return (item.kind, item.name, item.offsets, item.size,
                    item.pixels.tobytes() if item.pixels is not None else None,
                    item.mask.tobytes() if item.mask is not None else None,
                    sorted(item.parasites.items()), [describe(c) for c in item.children])

        return [[describe(item) for item in self.layers], self.selection.tobytes(),
                list(self.selected)]


class FakeDocument(core.Document):
    """The core's questions answered from a FakeImage; `fail_on` names a method that raises
    GimpCallFailed (a GIMP call failing), `crash_on` one that raises a bug's exception.
    Pixels cross raw, as in both GIMPs: an RGB layer as it is, anything else as RGBA."""

    def __init__(self, image: FakeImage, drawables, arguments: dict | None,
                 fail_on: str | None = None, crash_on: str | None = None,
                 interactive: bool = False):
        self.image = image
        self.interactive = interactive
        self.settings_offered: list[str] = []
        self.on_settings = None  # what the user does in the settings dialog: saved or not
        self.while_waiting = None  # what the user does while the edit is pending
        self.new_images: list[FakeImage] = []
        self.shown: list[FakeImage] = []
        self.chosen = list(drawables)
        self.arguments = arguments
        self.fail_on = fail_on
        self.crash_on = crash_on
        # GIMP 3 answers layer_preview for opaque 8-bit sRGB layers; False: as GIMP 2.10
        # (and GIMP 3 with previews turned off), which never does.
        self.gives_previews = False
        self.preview_calls: list[tuple] = []
        self._scaled = None  # ((layer, scale), the layer scaled): GIMP's previews at a scale
        self.progress: list[tuple] = []
        self.exported: dict[str, Image.Image] = {}
        self.calls: list[str] = []
        self.previews: list[tuple] = []
        self.cost_questions: list[str] = []
        self.notes: list[str] = []  # show_note's lines, as a retoucher would read them
        # confirm_cost's answer: True (send), False (a non-interactive run), "cancel" (a
        # user who says no)
        self.confirm = False

    def _call(self, name):
        self.calls.append(name)
        if name == self.fail_on:
            raise core.GimpCallFailed()
        if name == self.crash_on:
            raise ZeroDivisionError("a bug")

    # -- questions ----------------------------------------------------------------------
    def drawables(self):
        return self.chosen

    def kind(self, drawable):
        return drawable.kind

    def layer_of_mask(self, mask):
        return mask.owner

    def layer_name(self, layer):
        return layer.name

    def layer_box(self, layer):
        return layer.offsets + layer.size

    def selection_bounds(self):
        box = self.image.selection.getbbox()
        return tuple(box) if box else None

    def ask_arguments(self):
        return self.arguments

    def image_size(self):
        return self.image.size

    def image_name(self):
        return self.image.name

    def tattoo(self, item):
        return item.tattoo

    def item_id(self, item):
        return id(item)

    def is_valid(self, item):
        return self.image.open and item in self.image.all_layers()

    def image_is_open(self):
        return self.image.open

    def layers_in(self, parent):
        return list(self.image.layers if parent is None else parent.children)

    def children(self, item):
        return list(item.children) if item.kind == "group" else []

    def parasite(self, item, name):
        return item.parasites.get(name)

    def offer_settings(self, reason):
        self.settings_offered.append(reason)
        return self.interactive and self.on_settings is not None and self.on_settings()

    # -- export -------------------------------------------------------------------------
    def layer_pixels(self, layer, region):
        self._call("layer_pixels")
        picture = layer.pixels.crop(region.bounds())
        if picture.mode != "RGB":  # like both GIMPs: RGB as it is, anything else as RGBA
            picture = picture.convert("RGBA")
        self.exported["reference" if "source" in self.exported else "source"] = picture
        return picture.mode, picture.tobytes()

    def layer_preview(self, layer, src, dest):
        """As GIMP does it: one scale for the call (the smaller of the two ratios), the
        tile starting at the source origin times it, rounded; the layer scaled by area,
        its last row and column repeated beyond its edge."""
        if not self.gives_previews or layer.pixels.mode != "RGB":
            return None
        self._call("layer_preview")
        self.preview_calls.append((tuple(src), tuple(dest)))
        scale = min(dest[0] / src[2], dest[1] / src[3])
        x, y = round(src[0] * scale), round(src[1] * scale)
        if self._scaled is None or self._scaled[0] != (id(layer), scale):
            size = tuple(math.ceil(side * scale) for side in layer.pixels.size)
            self._scaled = (id(layer), scale), scaled_by_area(layer.pixels, scale, size)
        return self._scaled[1].crop((x, y, x + dest[0], y + dest[1])).tobytes()

    def selection_pixels(self, region):
        self._call("selection_pixels")
        picture = self.image.selection.crop(region.bounds())  # zero beyond the canvas
        self.exported["selection"] = picture
        return picture.tobytes()

    # -- results ------------------------------------------------------------------------
    def new_layer(self, width, height, mode, pixels):
        self._call("new_layer")
        return Item("layer", "new layer", Image.frombytes(mode, (width, height), pixels))

    def new_group(self, name):
        return Item("group", name, Image.new("RGBA", (1, 1)))

    def parent_and_position(self, layer):
        return self.image.parent(layer), self.image.siblings(layer).index(layer)

    def insert(self, item, parent, position):
        self._call("insert")
        self.image.add_layer(item, parent, position)
        self._record("insert", item.name)

    def set_name(self, item, name):
        item.name = name

    def move(self, item, x, y):
        item.offsets = (x, y)

    def add_mask(self, item):
        self._call("add_mask")
        assert not item.inserted, "the mask comes with the layer, for undo and redo alike"
        item.mask = Image.new("L", item.size)

    def fill_mask(self, item, pixels):
        self._call("fill_mask")
        assert item.inserted and item.mask is not None
        item.mask = Image.frombytes("L", item.size, pixels)
        self._record("mask", item.name)

    def set_visible(self, item, visible):
        item.visible = visible

    def new_image(self, width, height):
        self.image = FakeImage((width, height), background=None)
        self.new_images.append(self.image)

    def show_new_image(self):
        self.shown.append(self.image)

    def attach_parasite(self, item, name, text):
        self._call("attach_parasite")
        item.parasites[name] = text
        self._record("parasite", item.name)

    def select(self, item):
        self.image.selected = [item]

    def remove(self, item):
        self.image.siblings(item).remove(item)
        for gone in [item] + item.children:
            gone.inserted, gone.deleted = False, True
        self._record("remove", item.name)

    def delete(self, item):
        assert not item.inserted, "GIMP deletes only items that are not in an image"
        item.deleted = True

    def undo_group_start(self):
        self.image.undo_log.append(("group-start",))
        self.image.undo_depth += 1

    def undo_group_end(self):
        self.image.undo_depth -= 1
        self.image.undo_log.append(("group-end",))

    def _record(self, what, name):
        self.image.undo_log.append((what, name, self.image.undo_depth > 0))

    # -- waiting ------------------------------------------------------------------------
    def progress_start(self, text):
        self.progress.append(("start", text))

    def progress_update(self, text, fraction):
        assert 0.0 <= fraction < 1.0
        self.progress.append(("update", text))

    def progress_end(self):
        self.progress.append(("end",))

    def wait_for_worker(self, run):
        if self.while_waiting is not None:
            self.while_waiting(self)
            self.while_waiting = None
        return core.Document.wait_for_worker(self, run)

    # -- live previews and cost ---------------------------------------------------------
    shows_previews = True  # records them, as a retoucher would see them

    def show_preview(self, preview):
        """Records what a retoucher would see: the preview's pixels (read now, as an
        adapter must: the job folder goes with the edit), where, and when."""
        picture = Image.frombytes(preview.mode, preview.size, preview.pixels())
        self.previews.append(("show", picture, dict(preview.placement),
                              time.monotonic(), list(self.image.names())))

    def clear_preview(self):
        self.previews.append(("clear", time.monotonic()))

    def confirm_cost(self, message):
        self.cost_questions.append(message)
        if self.confirm == "cancel":
            raise core.Cancelled()
        return self.confirm

    def show_note(self, text):
        self.notes.append(text)


def layer(name: str, pixels: Image.Image, offsets=(0, 0)) -> Item:
    return Item("layer", name, pixels, offsets)


def mask_of(owner: Item) -> Item:
    mask = Item("layer_mask", owner.name + " mask", Image.new("L", owner.size, 255),
                owner.offsets)
    mask.owner = owner
    return mask


def scaled_by_area(picture: Image.Image, scale: float, size: tuple[int, int]) -> Image.Image:
    """`picture` scaled by `scale` (pixel i covering picture [i / scale, (i + 1) / scale)),
    `size` pixels of it from the corner: past the picture's edge its last row and column
    repeat."""
    width, height = picture.size
    reach = (max(width, int(size[0] / scale) + 2), max(height, int(size[1] / scale) + 2))
    padded = Image.new(picture.mode, reach)
    padded.paste(picture, (0, 0))
    if reach[0] > width:
        padded.paste(picture.crop((width - 1, 0, width, height)).resize(
            (reach[0] - width, height)), (width, 0))
    if reach[1] > height:
        padded.paste(padded.crop((0, height - 1, reach[0], height)).resize(
            (reach[0], reach[1] - height)), (0, height))
    return padded.resize(size, Image.Resampling.BOX,
                         box=(0, 0, size[0] / scale, size[1] / scale))
