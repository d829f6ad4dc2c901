#!/usr/bin/env python3
"""GPT Image Edit for GIMP 3.0 and 3.2: Filters > AI > GPT Image Edit... and its settings.

The edit itself is the host core's (gpt_image_edit_core.py, shared with GIMP 2.10): this
file is GIMP 3's adapter, answering the core's questions with GIMP 3's API (the layer, the
selection, export this region at this size, insert this layer), plus the dialogs. The
pictures are edited by the worker (docs/job-protocol.md); only GIMP (gi) and the standard
library are used here.
"""

import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402

ENTRY_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ENTRY_DIR)
import gpt_image_edit_core as core  # noqa: E402
import gpt_image_edit_host as host  # noqa: E402

EDIT_PROCEDURE = "plug-in-gpt-image-edit"
SETTINGS_PROCEDURE = "plug-in-gpt-image-edit-settings"
# The edit's own helper (no menu): runs the worker with the progress and the live previews
# in a process of its own, so that GIMP's Cancel, which ends that process at once, leaves
# the edit's process alive to take the previews away (docs/architecture.md, "Live
# previews").
WAIT_PROCEDURE = "plug-in-gpt-image-edit-wait"
PREVIEW_PARASITE = host.PREVIEW_PARASITE  # marks a preview layer: never persistent
PREVIEW_NAME = host.PREVIEW_NAME
HELP_DOMAIN = "gpt-image-edit"
MENU_PATH = "<Image>/Filters/AI"
SETTINGS_MENU = host.SETTINGS_MENU
QUALITIES = (("auto", "Auto"), ("low", "Low"), ("medium", "Medium"), ("high", "High"))
ARGUMENTS = ("prompt", "model", "size", "quality", "variants", "use-selection", "blend",
             "reference")
LINE_CHARS = 72  # the estimate line's width: "Estimated cost: $0.1234 (1536x1024, ...)."
BLENDS = (("none", "None: the result as sent, the bare selection as mask"),
          ("feather", "Feather: a soft mask edge inside the selection"),
          ("seamless", "Seamless: feather, the model's colour drift corrected"))
NO_REFERENCE = "No reference"
POLL_MS = 100


# ---------------------------------------------------------------------------------------
# Settings: the worker owns the settings file (its path rules, format and mode 0600).

# ---------------------------------------------------------------------------------------
# The edit procedure: GIMP 3's answers to the core's questions.

def run_edit(procedure, run_mode, image, drawables, config, data):
    document = Gimp3Document(procedure, image, drawables, config, run_mode)
    outcome = core.edit(document, ENTRY_DIR)
    if outcome.status == "cancel":
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    if outcome.status == "error":
        # GIMP shows the error's text in a message when the user ran the procedure (a
        # Gimp.message of our own would show it twice).
        return fail(procedure, outcome.message)
    if not image.is_valid():
        # Closed while the edit was pending: the result is in a new image. On SUCCESS
        # libgimp would store the dialog's values as a parasite on the closed image, and
        # GIMP would show a calling error for it.
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def fail(procedure, sentence):
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                       GLib.Error(sentence))


class Gimp3Document(core.Document):
    def __init__(self, procedure, image, drawables, config, run_mode):
        self.procedure = procedure
        self.image = image
        self.chosen = list(drawables)
        self.config = config
        self.run_mode = run_mode
        self.interactive = run_mode == Gimp.RunMode.INTERACTIVE
        # A person runs it (the dialog, or Filters > Repeat with the last values): someone to
        # ask, and to show live previews to; a script's call has no window to watch.
        self.attended = self.shows_previews = run_mode != Gimp.RunMode.NONINTERACTIVE
        self._stores_srgb = {}  # image id -> stores_srgb

    # -- questions ----------------------------------------------------------------------
    def drawables(self):
        return self.chosen

    def kind(self, drawable):
        if isinstance(drawable, Gimp.LayerMask):
            return "layer_mask"
        if isinstance(drawable, Gimp.GroupLayer):
            return "group"
        return "layer" if isinstance(drawable, Gimp.Layer) else "channel"

    def layer_of_mask(self, mask):
        return Gimp.Layer.from_mask(mask)

    def layer_name(self, layer):
        return layer.get_name()

    def layer_box(self, layer):
        offsets = layer.get_offsets()  # (x, y) or (success, x, y) depending on bindings
        return offsets[-2], offsets[-1], layer.get_width(), layer.get_height()

    def selection_bounds(self):
        _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(self.image)
        return (x1, y1, x2, y2) if non_empty else None

    def ask_arguments(self):
        if self.interactive:
            settings = host.cost_settings()  # once: the line follows every change

            def estimate_line():
                return core.dialog_estimate(self, self.values(), settings)

            if not show_edit_dialog(self.procedure, self.config, estimate_line, self.chosen):
                return None
        values = self.values()
        if self.run_mode == Gimp.RunMode.WITH_LAST_VALS:
            # Filters > Repeat: a reference is sent only when chosen for this edit, never
            # remembered from an earlier one (perhaps of another image).
            values["reference"] = None
        return values

    def values(self):
        return {name: self.config.get_property(name) for name in ARGUMENTS}

    def image_size(self):
        return self.image.get_width(), self.image.get_height()

    def image_name(self):
        return self.image.get_name()

    def tattoo(self, item):
        return item.get_tattoo()

    def item_id(self, item):
        return item.get_id()

    def is_valid(self, item):
        return item.is_valid()

    def image_is_open(self):
        return self.image.is_valid()

    def layers_in(self, parent):
        return list(self.image.get_layers() if parent is None else parent.get_children())

    def children(self, item):
        return list(item.get_children()) if isinstance(item, Gimp.GroupLayer) else []

    def parasite(self, item, name):
        data = parasite_bytes(item, name)
        return None if data is None else data.decode("utf-8", "replace")

    def offer_settings(self, reason):
        if not self.interactive:
            return False
        return SettingsDialog(host.find_worker(ENTRY_DIR), reason).run()

    def confirm_cost(self, message):
        if not self.attended:
            return False
        if not ask_to_send(message):
            raise core.Cancelled()  # the retoucher read the sentence: no message again
        return True

    def show_note(self, text):
        # From an image window GIMP shows a one-line message in its status bar for a few
        # seconds (a dialog only when it does not fit); a script's runs keep it in the
        # result's parasite only.
        if self.attended:
            Gimp.message(text)

    # -- pixels both ways: raw, read and written through GEGL buffers --------------------
    def layer_pixels(self, layer, region):
        # The layer's buffer carries its image's colour space (its profile) and precision;
        # babl formats named without a space are sRGB, so GEGL converts whatever the image
        # holds (another profile, linear light, 16/32 bits, grey, indexed) to 8-bit sRGB
        # R'G'B'(A), what the model works in. An 8-bit perceptual RGB layer is read as RGB
        # (converting to RGBA costs GEGL a quarter of a second to set up in every plug-in
        # process). The layer may be a reference in another image.
        mode = "RGB" if stored_as_rgb(layer) else "RGBA"
        return mode, read_pixels(layer, region.x, region.y, region.width, region.height,
                                 PIXEL_FORMATS[mode])

    def layer_preview(self, layer, src, dest):
        # GIMP's previews are the layer's stored values, 8-bit perceptual, in the image's
        # own colour space: the pixels as layer_pixels reads them only for an opaque 8-bit
        # perceptual RGB layer of an image that stores sRGB values. GIMP scales them down
        # itself (by area, in its own process), so a 24 MP layer crosses at the API's size.
        if not (stored_as_rgb(layer) and self.stores_srgb(layer.get_image())):
            return None
        try:
            found = layer.get_sub_thumbnail_data(*(tuple(src) + tuple(dest)))
        except GLib.Error:  # previews turned off in GIMP's preferences
            return None
        if found is None or found[0] is None or tuple(found[1:]) != tuple(dest) + (3,):
            return None
        return found[0].get_data()

    def stores_srgb(self, image):
        """stores_srgb(image), tried once an edit (the previews come in several tiles)."""
        if image.get_id() not in self._stores_srgb:
            self._stores_srgb[image.get_id()] = stores_srgb(image)
        return self._stores_srgb[image.get_id()]

    def selection_pixels(self, region):
        # Linear, like the selection itself: a feathered edge keeps its values; beyond the
        # canvas the abyss reads 0, "not selected".
        return read_pixels(self.image.get_selection(), region.x, region.y, region.width,
                           region.height, "Y u8")

    def new_layer(self, width, height, mode, pixels):
        with_alpha = mode == "RGBA"
        layer = Gimp.Layer.new(self.image, "GPT Image Edit", width, height,
                               layer_type(self.image.get_base_type(), with_alpha), 100,
                               Gimp.LayerMode.NORMAL)
        if layer is None:
            raise core.GimpCallFailed()
        try:
            write_pixels(layer, width, height, PIXEL_FORMATS[mode], pixels)
        except core.GimpCallFailed:
            layer.delete()
            raise
        return layer

    # -- results ------------------------------------------------------------------------
    def new_group(self, name):
        return Gimp.GroupLayer.new(self.image, name)

    def parent_and_position(self, layer):
        return layer.get_parent(), self.image.get_item_position(layer)

    def insert(self, item, parent, position):
        gimp_call(self.image.insert_layer, item, parent, position)

    def set_name(self, item, name):
        item.set_name(name)

    def move(self, item, x, y):
        item.set_offsets(x, y)

    def add_mask(self, item):
        gimp_call(item.add_mask, item.create_mask(Gimp.AddMaskType.BLACK))
        item.set_edit_mask(False)  # the layer, not its mask, is the one the user works on

    def fill_mask(self, item, pixels):
        mask = item.get_mask()
        width, height = mask.get_width(), mask.get_height()
        write_pixels(mask, width, height, "Y u8", pixels)
        mask.update(0, 0, width, height)  # in the image already: the display follows

    def set_visible(self, item, visible):
        item.set_visible(visible)

    def new_image(self, width, height):
        self.image = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)

    def show_new_image(self):
        try:
            Gimp.Display.new(self.image)
        except GLib.Error:  # no display in batch mode: the image is still in GIMP's list
            pass

    def attach_parasite(self, item, name, text):
        # UNDOABLE: a persistent parasite attached without it makes GIMP push a "Can't
        # undo Attach Parasite to Item" step, which then pops up on every Ctrl+Z.
        flags = Gimp.PARASITE_PERSISTENT | Gimp.PARASITE_UNDOABLE
        data = list(text.encode("utf-8"))
        gimp_call(item.attach_parasite, Gimp.Parasite.new(name, flags, data))

    def select(self, item):
        self.image.set_selected_layers([item])

    def remove(self, item):
        self.image.remove_layer(item)

    def delete(self, item):
        item.delete()

    def undo_group_start(self):
        self.image.undo_group_start()

    def undo_group_end(self):
        self.image.undo_group_end()

    def flush(self):
        Gimp.displays_flush()

    # -- waiting ------------------------------------------------------------------------
    @property
    def watches_worker(self):
        return not self.shows_previews  # with previews, the wait procedure runs it

    def run_worker(self, worker, job):
        """With previews, the worker runs in the wait procedure's process, which owns the
        progress (and so GIMP's Cancel) and the previews; this process waits for it and,
        whatever became of it, takes away every preview it left."""
        procedure = Gimp.get_pdb().lookup_procedure(WAIT_PROCEDURE)
        if not self.shows_previews or procedure is None or not self.image.is_valid():
            return core.watch_worker(self, worker, job)
        config = procedure.create_config()
        config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
        config.set_property("image", self.image)
        source = layer_of(self.chosen[0])  # the edited layer (the core checked the choice)
        if source.is_valid():
            config.set_property("source", source)
        config.set_property("job-folder", job.folder)
        config.set_property("progress-note", self.progress_note)
        undo_was_enabled = self.image.undo_is_enabled()
        # Its Cancel is the wait procedure's alone: GIMP ends every process that started
        # a progress on this display.
        Gimp.progress_end()
        try:
            status = procedure.run(config).index(0)
        finally:
            if self.image.is_valid():
                if undo_was_enabled and not self.image.undo_is_enabled():
                    self.image.undo_thaw()  # it was ended between freeze and thaw
                remove_previews(self.image, job.folder)
                Gimp.displays_flush()
            Gimp.progress_init("GPT Image Edit")
        if status == Gimp.PDBStatusType.CANCEL:
            raise core.Cancelled()
        manifest = job.load_outcome()
        if manifest is None:
            raise host.HostError(core.UNEXPECTED)
        return manifest

    def progress_start(self, text):
        Gimp.progress_init(text)

    def progress_update(self, text, fraction):
        # The status bar of the image window: the stage and the seconds, a pulsing bar (the
        # worker knows no fraction) and GIMP's own Cancel, which ends this process.
        Gimp.progress_set_text(text)
        Gimp.progress_pulse()

    def progress_end(self):
        Gimp.progress_end()


class PreviewDocument(Gimp3Document):
    """The wait procedure's side: the worker's progress in the status bar and each live
    preview as a layer where the result will land (above the source layer and its earlier
    results), inserted and removed with the image's undo frozen for just those calls, so
    it never enters the undo history while the retoucher's own steps do."""

    def __init__(self, image, source, job_folder):
        Gimp3Document.__init__(self, None, image, [], None, Gimp.RunMode.NONINTERACTIVE)
        self.source = source
        self.job_folder = job_folder
        self.shown = None

    def show_preview(self, preview):
        if not self.image.is_valid():
            return
        try:
            pixels = preview.pixels()
        except (OSError, ValueError):
            return  # gone with a job that ended meanwhile: the result matters more
        width, height = preview.size
        layer = Gimp.Layer.new(self.image, PREVIEW_NAME, width, height,
                               layer_type(self.image.get_base_type(), False), 100,
                               Gimp.LayerMode.NORMAL)
        try:
            write_pixels(layer, width, height, PIXEL_FORMATS[preview.mode], pixels)
        except core.GimpCallFailed:
            layer.delete()
            return
        del pixels
        selected = [item for item in self.image.get_selected_layers() if item.is_valid()]
        place = preview.placement
        self.image.undo_freeze()
        try:
            if self.shown is not None and self.shown.is_valid():
                self.image.remove_layer(self.shown)  # first: the new one keeps the name
            parent, position = self.where()
            layer.attach_parasite(Gimp.Parasite.new(
                PREVIEW_PARASITE, 0, list(self.job_folder.encode("utf-8"))))
            self.image.insert_layer(layer, parent, position)
            if (width, height) != (place["width"], place["height"]):
                scale(layer, place["width"], place["height"])
            layer.set_offsets(place["x"], place["y"])
            # Nothing of the retoucher's goes into it or changes it: no undo step of theirs
            # ever names a layer that goes away by itself.
            layer.set_lock_content(True)
            layer.set_lock_position(True)
            layer.set_lock_visibility(True)
            self.image.set_selected_layers(selected)  # inserting selected the preview
        finally:
            self.image.undo_thaw()
        self.shown = layer
        Gimp.displays_flush()

    def where(self):
        if self.source is None or not self.source.is_valid():
            return None, 0
        return core.where_results_go(self, self.source, {"tattoo": self.source.get_tattoo()})

    def clear_preview(self):
        if self.image.is_valid():
            remove_previews(self.image, self.job_folder)
            Gimp.displays_flush()
        self.shown = None


def remove_previews(image, job_folder):
    """Every preview layer of the job `job_folder` in the image (its parasite says which),
    removed with the image's undo frozen for just that."""
    tag = job_folder.encode("utf-8")
    found = [layer for layer in all_layers(image.get_layers())
             if parasite_bytes(layer, PREVIEW_PARASITE) == tag]
    if not found:
        return
    image.undo_freeze()
    try:
        for layer in found:
            if layer.is_valid():
                image.remove_layer(layer)
    finally:
        image.undo_thaw()


def parasite_bytes(item, name):
    found = item.get_parasite(name)
    if found is None:
        return None
    data = found.get_data()  # a list of byte values (a tuple with its length on 3.0)
    return bytes(data[0] if isinstance(data, tuple) else data)


def scale(layer, width, height):
    """A preview scaled up to its placement: linear, fast even to 24 MP, and good enough
    for a picture that is replaced within seconds."""
    Gimp.context_push()
    try:
        Gimp.context_set_interpolation(Gimp.InterpolationType.LINEAR)
        layer.scale(width, height, False)
    finally:
        Gimp.context_pop()


def run_wait(procedure, config, data):
    """The wait procedure: the worker on the job the edit wrote, its progress and previews
    shown here; how it ended is left in the job's folder for the edit (Job.load_outcome)."""
    image = config.get_property("image")
    try:
        job = host.Job(config.get_property("job-folder"))
    except (TypeError, ValueError) as error:
        return fail(procedure, str(error))
    document = PreviewDocument(image, config.get_property("source"), job.folder)
    document.progress_note = config.get_property("progress-note")  # the edit's estimate
    document.progress_start("GPT Image Edit: starting")
    try:
        core.watch_worker(document, host.find_worker(ENTRY_DIR), job)
        job.save_outcome()
    except host.HostError as error:
        job.save_outcome(error)
    finally:
        document.progress_end()
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def gimp_call(function, *arguments):
    """A GIMP call whose failure the core turns into its sentence. Most libgimp methods
    return False on failure; some raise GLib.Error."""
    try:
        done = function(*arguments)
    except GLib.Error:
        raise core.GimpCallFailed() from None
    if done is False:
        raise core.GimpCallFailed()
    return done


def show_edit_dialog(procedure, config, estimate_line, edited=()):
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi, Gtk

    GimpUi.init(EDIT_PROCEDURE)
    dialog = GimpUi.ProcedureDialog(procedure=procedure, config=config,
                                    title="GPT Image Edit")
    prompt = dialog.get_widget("prompt", Gtk.TextView)
    prompt.set_wrap_mode(Gtk.WrapMode.WORD_CHAR)
    prompt.set_size_request(420, 110)
    dialog.get_label("prompt-label", "_Prompt: what should change?", False, True)
    dialog.fill_frame("prompt-frame", "prompt-label", False, "prompt")
    dialog.fill(["prompt-frame", "model", "size", "quality", "variants", "use-selection",
                 "blend"])
    reference = ReferenceChooser(Gtk, edited)
    dialog.get_content_area().pack_start(reference.box, False, False, 0)
    follow = EstimateLine(dialog, config, estimate_line)
    prompt.grab_focus()  # the prompt is what one types first
    confirmed = dialog.run()
    follow.stop()
    if confirmed:
        config.set_property("reference", reference.chosen())
    dialog.destroy()
    return confirmed


class EstimateLine:
    """Below the dialog's fields, the estimate for the values it holds (estimate_line(),
    computed in this process), following every change of the config until stop()."""

    def __init__(self, dialog, config, estimate_line):
        from gi.repository import Gtk

        self.config = config
        # As wide as its longest usual line, so the dialog keeps its size as numbers change.
        label = Gtk.Label(label=estimate_line(), xalign=0, wrap=True, width_chars=LINE_CHARS,
                          max_width_chars=LINE_CHARS, margin_top=6)
        dialog.get_content_area().pack_start(label, False, False, 0)
        label.show()
        self.handlers = [config.connect("notify::" + name,
                                        lambda *_: label.set_text(estimate_line()))
                         for name in ARGUMENTS]

    def stop(self):
        for handler in self.handlers:
            self.config.disconnect(handler)


def ask_to_send(message):
    """The spending limit's question: the worker's sentence (the estimate and the limit),
    Send anyway or Cancel; True to send. Cancel is the default: it costs nothing."""
    gi.require_version("GimpUi", "3.0")
    from gi.repository import GimpUi, Gtk

    GimpUi.init(EDIT_PROCEDURE)
    dialog = GimpUi.Dialog(title="GPT Image Edit: above the spending limit",
                           role=EDIT_PROCEDURE + "-cost")
    dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
    dialog.add_button("_Send anyway", Gtk.ResponseType.OK)
    dialog.set_default_response(Gtk.ResponseType.CANCEL)
    box = Gtk.Box(orientation=Gtk.Orientation.VERTICAL, spacing=12, border_width=12)
    for text in (message, "Send this edit all the same?"):
        box.pack_start(Gtk.Label(label=text, xalign=0, wrap=True, max_width_chars=60),
                       False, False, 0)
    dialog.get_content_area().pack_start(box, True, True, 0)
    dialog.show_all()
    try:
        return dialog.run() == Gtk.ResponseType.OK
    finally:
        dialog.destroy()


class ReferenceChooser:
    """The dialog's reference field: "No reference" (always the first entry and the one
    shown when the dialog opens, whatever an earlier edit chose, so that a reference is sent
    only when chosen for this edit), then every layer of every open image but the one
    edited."""

    def __init__(self, Gtk, edited):
        edited_ids = {layer_of(drawable).get_id() for drawable in edited}
        self.layers = [None]
        self.combo = Gtk.ComboBoxText()
        self.combo.append_text(NO_REFERENCE)
        for image in Gimp.get_images():
            for layer in all_layers(image.get_layers()):
                if layer.get_id() in edited_ids:
                    continue
                self.layers.append(layer)
                # As GIMP's own item menus: the image's ID tells apart images of one name.
                self.combo.append_text(f"{image.get_name()}-{image.get_id()}: "
                                       f"{layer.get_name()}")
        self.combo.set_active(0)
        self.combo.set_tooltip_text("Another layer sent with the picture, for \"make it "
                                    "look like this\"; it is only looked at, never edited")
        label = Gtk.Label(label="R_eference", use_underline=True, xalign=0,
                          mnemonic_widget=self.combo)
        self.box = Gtk.Box(orientation=Gtk.Orientation.HORIZONTAL, spacing=12)
        self.box.pack_start(label, False, False, 0)
        self.box.pack_start(self.combo, True, True, 0)
        self.box.show_all()

    def chosen(self):
        index = self.combo.get_active()
        return self.layers[index] if index > 0 else None


def layer_of(drawable):
    return Gimp.Layer.from_mask(drawable) if isinstance(drawable, Gimp.LayerMask) else drawable


def all_layers(items):
    """The layers (not groups) among `items` and inside their groups, top first."""
    found = []
    for item in items:
        if item.is_group():
            found.extend(all_layers(item.get_children()))
        else:
            found.append(item)
    return found


PIXEL_FORMATS = {"RGBA": "R'G'B'A u8", "RGB": "R'G'B' u8"}  # raw modes as GEGL names them
# sRGB values another colour space stores differently: the primaries, white, grey, black and
# two mixtures (Adobe RGB keeps only white and black).
SRGB_PROBE = bytes((255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 128, 128, 128, 30, 60, 90,
                    0, 0, 0, 200, 150, 100))
LAYER_TYPES = {  # (base type, with alpha): the type a new layer of such an image takes
    (Gimp.ImageBaseType.RGB, False): Gimp.ImageType.RGB_IMAGE,
    (Gimp.ImageBaseType.RGB, True): Gimp.ImageType.RGBA_IMAGE,
    (Gimp.ImageBaseType.GRAY, False): Gimp.ImageType.GRAY_IMAGE,
    (Gimp.ImageBaseType.GRAY, True): Gimp.ImageType.GRAYA_IMAGE,
    (Gimp.ImageBaseType.INDEXED, False): Gimp.ImageType.INDEXED_IMAGE,
    (Gimp.ImageBaseType.INDEXED, True): Gimp.ImageType.INDEXEDA_IMAGE,
}


def layer_type(base_type, with_alpha):
    return LAYER_TYPES[(base_type, with_alpha)]


def read_pixels(drawable, x, y, width, height, pixel_format):
    """A rectangle of the drawable (its own coordinates) as raw bytes of `pixel_format`,
    at full size: GEGL reads below scale 1 return no pixels in a plug-in process, and
    GIMP's own scale of a 24 MP layer (Gimp.Layer.scale) takes 0.7 s or more, so the worker
    scales (Pillow) what the layer's previews cannot give (Gimp3Document.layer_preview)."""
    try:
        return drawable.get_buffer().get(Gegl.Rectangle.new(x, y, width, height), 1.0,
                                         pixel_format, Gegl.AbyssPolicy.NONE)
    except GLib.Error:
        raise core.GimpCallFailed() from None


def stored_as_rgb(layer):
    """Whether the layer is stored as the edit reads it: opaque 8-bit perceptual RGB."""
    return (layer.is_rgb() and not layer.has_alpha()
            and layer.get_image().get_precision() == Gimp.Precision.U8_NON_LINEAR)


def stores_srgb(image):
    """Whether the image (8-bit perceptual RGB) stores sRGB values as they are: it has no
    profile of its own, GIMP's own sRGB, or another sRGB profile (camera files carry their
    own) that GIMP converts sRGB through unchanged, as tried on a one-row image of it."""
    profile = image.get_color_profile()
    if profile is None or profile.is_equal(Gimp.ColorProfile.new_rgb_srgb()):
        return True
    width = len(SRGB_PROBE) // 3
    probe = Gimp.Image.new(width, 1, Gimp.ImageBaseType.RGB)
    try:
        probe.set_color_profile(profile)
        layer = Gimp.Layer.new(probe, "sRGB probe", width, 1, Gimp.ImageType.RGB_IMAGE, 100,
                               Gimp.LayerMode.NORMAL)
        probe.insert_layer(layer, None, 0)
        write_pixels(layer, width, 1, PIXEL_FORMATS["RGB"], SRGB_PROBE)
        found = layer.get_sub_thumbnail_data(0, 0, width, 1, width, 1)
    except (GLib.Error, core.GimpCallFailed):
        return False
    finally:
        probe.delete()
    return found is not None and found[0] is not None and found[0].get_data() == SRGB_PROBE


def write_pixels(drawable, width, height, pixel_format, pixels):
    """Raw bytes of `pixel_format` into the whole drawable (not yet in the image, so no
    undo step of its own); GEGL converts them to the drawable's type and precision."""
    try:
        buffer = drawable.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, width, height), pixel_format, pixels)
        buffer.flush()
    except GLib.Error:
        raise core.GimpCallFailed() from None


# ---------------------------------------------------------------------------------------
# The settings procedure.

def run_settings(procedure, config, data):
    if config.get_property("run-mode") != Gimp.RunMode.INTERACTIVE:
        return procedure.new_return_values(
            Gimp.PDBStatusType.CALLING_ERROR,
            GLib.Error("GPT Image Settings can only be changed in its dialog: open "
                       f"{SETTINGS_MENU}."))
    try:
        worker = host.find_worker(ENTRY_DIR)
        saved = SettingsDialog(worker).run()
    except host.HostError as error:
        return fail(procedure, str(error))
    status = Gimp.PDBStatusType.SUCCESS if saved else Gimp.PDBStatusType.CANCEL
    return procedure.new_return_values(status, GLib.Error())


class SettingsDialog:
    """Endpoint, API key (masked, never shown back) and timeout, with Test connection."""

    def __init__(self, worker, reason=None):
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi, Gtk

        GimpUi.init(SETTINGS_PROCEDURE)
        self.Gtk = Gtk
        self.worker = worker
        self.check = None  # the running connection test, if any
        self.stored = stored = host.worker_settings(worker)
        self.dialog = GimpUi.Dialog(title="GPT Image Settings", role=SETTINGS_PROCEDURE)
        self.dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
        self.dialog.add_button("_Save", Gtk.ResponseType.OK)
        grid = Gtk.Grid(row_spacing=6, column_spacing=12, border_width=12)
        self.endpoint = Gtk.Entry(text=stored["base_url"], width_chars=40)
        self.key = Gtk.Entry(visibility=False, input_purpose=Gtk.InputPurpose.PASSWORD)
        self.key.set_placeholder_text("a key is set: type a new one to replace it"
                                      if stored["api_key_stored"] else "paste your WisGate key")
        self.timeout = Gtk.SpinButton.new_with_range(5, 3600, 5)
        self.timeout.set_value(stored["timeout"])
        # A broken settings file is said here; saving writes a good one.
        self.status = Gtk.Label(label=stored["problem"] or "", xalign=0, wrap=True,
                                max_width_chars=50)
        test = Gtk.Button(label="_Test connection", use_underline=True)
        test.connect("clicked", self.on_test)
        rows = (("Endpoint", self.endpoint), ("API key", self.key),
                ("Timeout (seconds)", self.timeout))
        first = 0
        if reason:  # opened by an edit that needs a key: say why, above everything
            grid.attach(Gtk.Label(label=reason, xalign=0, wrap=True, max_width_chars=50),
                        0, 0, 2, 1)
            first = 1
        for row, (label, widget) in enumerate(rows, start=first):
            grid.attach(Gtk.Label(label=label, xalign=0), 0, row, 1, 1)
            grid.attach(widget, 1, row, 1, 1)
        grid.attach(test, 1, first + len(rows), 1, 1)
        grid.attach(self.status, 0, first + len(rows) + 1, 2, 1)
        self.dialog.get_content_area().pack_start(grid, True, True, 0)

    def changes(self):
        changes = {"base_url": self.endpoint.get_text().strip() or None,
                   "timeout": self.timeout.get_value()}
        key = self.key.get_text().strip()
        if key:  # an empty box keeps the stored key
            changes["api_key"] = key
        return changes

    def run(self):
        """Show the dialog; True when the settings were saved."""
        self.dialog.show_all()
        try:
            saved = self.dialog.run() == self.Gtk.ResponseType.OK
            if saved:
                host.worker_settings(self.worker, self.changes())
        finally:
            if self.check is not None:  # closed while testing: stop the test, not GIMP
                self.check.stop()
                self.check = None
            self.dialog.destroy()
        return saved

    def on_test(self, button):
        """Run the worker's `check` without freezing the dialog; show its sentence."""
        try:
            check = host.ConnectionCheck(self.worker, self.changes(),
                                    self.stored["default_base_url"])
        except host.HostError as error:
            self.status.set_text(str(error))
            return
        self.check = check
        button.set_sensitive(False)
        self.status.set_text("Testing the connection...")

        def on_tick():
            if self.check is not check:  # the dialog closed and stopped it
                return False
            if check.running():
                return True
            self.check = None
            self.status.set_text(check.sentence())
            button.set_sensitive(True)
            return False

        GLib.timeout_add(POLL_MS, on_tick)


# ---------------------------------------------------------------------------------------
# Registration.

class GptImageEdit(Gimp.PlugIn):
    def do_query_procedures(self):
        # The dialogs' Help opens the manual the installer puts beside this file
        # (help/en/gimp-help.xml maps each procedure's help id to docs/manual.html).
        help_folder = Gio.File.new_for_path(os.path.join(ENTRY_DIR, "help"))
        self.set_help_domain(HELP_DOMAIN, help_folder)
        return [EDIT_PROCEDURE, SETTINGS_PROCEDURE, WAIT_PROCEDURE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        if name == EDIT_PROCEDURE:
            return create_edit_procedure(self, name)
        if name == WAIT_PROCEDURE:
            return create_wait_procedure(self, name)
        return create_settings_procedure(self, name)


def create_edit_procedure(plug_in, name):
    procedure = Gimp.ImageProcedure.new(plug_in, name, Gimp.PDBProcType.PLUGIN,
                                        run_edit, None)
    procedure.set_image_types("*")
    # Enabled with one drawable selected; anything else gets a sentence when it runs.
    procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
    procedure.set_menu_label("GPT Image Edit...")
    procedure.add_menu_path(MENU_PATH)
    procedure.set_documentation(
        "Edit a layer with a prompt through the WisGate images API",
        "Sends the layer, or the part of it around the selection, with the prompt to the "
        "images edit API and inserts the result as a new layer (a layer group for several "
        "variants) above it, with a layer mask from the selection. The API key and endpoint "
        "come from " + SETTINGS_MENU + " or the environment.", name)
    procedure.set_attribution("GPT Image Edit for GIMP", "GPT Image Edit for GIMP", "2026")
    flags = GObject.ParamFlags.READWRITE
    procedure.add_string_argument("prompt", "_Prompt", "What to change", "", flags)
    procedure.add_string_argument("model", "_Model", "Model name the endpoint accepts",
                                  "gpt-image-2", flags)
    procedure.add_string_argument("size", "S_ize",
                                  "auto, or WIDTHxHEIGHT for the request", "auto", flags)
    procedure.add_choice_argument("quality", "_Quality", "Quality passed to the API",
                                  choice_of(QUALITIES), "high", flags)
    procedure.add_int_argument("variants", "_Variants",
                               "How many results (more than one gives a layer group)",
                               1, 10, 1, flags)
    procedure.add_boolean_argument("use-selection", "_Use selection",
                                   "Edit only the selected area, when there is a selection",
                                   True, flags)
    # Added at the end (product.md): scripts written for the arguments above get seamless
    # and no reference.
    procedure.add_choice_argument("blend", "_Blend", "How the result meets the picture",
                                  choice_of(BLENDS), core.DEFAULT_BLEND, flags)
    procedure.add_drawable_argument("reference", "_Reference",
                                    "Another layer (of any open image) sent as a reference "
                                    "picture after the edited one; none by default", True,
                                    flags)
    return procedure


def choice_of(entries):
    choice = Gimp.Choice.new()
    for index, (nick, label) in enumerate(entries):
        choice.add(nick, index, label, "")
    return choice


def create_settings_procedure(plug_in, name):
    procedure = Gimp.Procedure.new(plug_in, name, Gimp.PDBProcType.PLUGIN, run_settings, None)
    procedure.set_menu_label("GPT Image Settings...")
    procedure.add_menu_path(MENU_PATH)
    procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.ALWAYS)
    procedure.set_documentation(
        "Set the endpoint, API key and timeout of GPT Image Edit",
        "Saves them to the gpt-image-edit settings file (readable only by you). The key is "
        "never shown back.", name)
    procedure.set_attribution("GPT Image Edit for GIMP", "GPT Image Edit for GIMP", "2026")
    procedure.add_enum_argument("run-mode", "Run mode", "The run mode", Gimp.RunMode,
                                Gimp.RunMode.INTERACTIVE, GObject.ParamFlags.READWRITE)
    return procedure


def create_wait_procedure(plug_in, name):
    procedure = Gimp.Procedure.new(plug_in, name, Gimp.PDBProcType.PLUGIN, run_wait, None)
    procedure.set_documentation(
        "GPT Image Edit's wait for the worker, with its live previews (internal)",
        "Called by " + EDIT_PROCEDURE + " only: runs the worker on the job in job-folder, "
        "shows its progress and live previews on the image, and leaves how it ended in the "
        "job folder.", name)
    procedure.set_attribution("GPT Image Edit for GIMP", "GPT Image Edit for GIMP", "2026")
    flags = GObject.ParamFlags.READWRITE
    procedure.add_enum_argument("run-mode", "Run mode", "The run mode", Gimp.RunMode,
                                Gimp.RunMode.NONINTERACTIVE, flags)
    procedure.add_image_argument("image", "Image", "The edited image", False, flags)
    procedure.add_layer_argument("source", "Source", "The edited layer (previews go above "
                                 "it)", True, flags)
    procedure.add_string_argument("job-folder", "Job folder", "The edit's job folder", "",
                                  flags)
    procedure.add_string_argument("progress-note", "Progress note", "Words after the "
                                  "seconds in the progress text (the estimate)", "", flags)
    return procedure


Gimp.main(GptImageEdit.__gtype__, sys.argv)
