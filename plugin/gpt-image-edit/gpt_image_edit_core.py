"""The edit, once for both GIMPs: the host core.

GIMP 3 (gpt-image-edit.py) and GIMP 2.10 (gpt-image-edit-gimp2.py) each give the core a
Document: a thin adapter that answers its questions (which drawables are chosen, a layer's
size and offsets, the selection's bounds) and does what it is told (export this region at
this size, insert this layer with a selection mask, show progress). Everything else is
decided here, once: which layer to edit, which part of it to send and at what size, how the
worker runs, where and how the results land, and the one sentence for every failure.

Modelled on Krita AI Diffusion's split (a host-independent model and a Document per host).
Valid Python 2.7 and 3, standard library only: GIMP 2.10 runs it under its Python 2.7.
Texts are unicode here; the 2.10 adapter converts GIMP's UTF-8 byte strings at its edge.
"""

from __future__ import absolute_import, division

import re
import sys
import traceback

import gpt_image_edit_host as host

try:  # the installer's copy of the worker's own module, beside this file
    import gpt_image_edit_geometry as geometry
except ImportError:  # in the repository (tests): the worker package itself
    from gpt_image_edit import geometry

QUALITIES = ("auto", "low", "medium", "high")
DEFAULT_MODEL = "gpt-image-2"
DEFAULT_QUALITY = "high"
MAX_VARIANTS = 10
# The worker reports no fraction, only elapsed time: the bar creeps towards this so it
# keeps moving (GIMP is alive) without ever claiming to be done.
PROGRESS_CEILING = 0.95
PROGRESS_HALF_SECONDS = 30.0
WAIT_COUNT = re.compile(u": \\d+ s$")  # "Waiting for gpt-image-2: 12 s"

NO_LAYER = u"GPT Image Edit works on one layer: select exactly one layer and try again."
NOT_A_LAYER = (u"GPT Image Edit works on a layer, not on a channel: select a layer and try "
               u"again.")
GROUP = (u"GPT Image Edit cannot edit a layer group: select one layer inside it and try "
         u"again.")
EMPTY_PROMPT = u"The prompt is empty: describe what should change and try again."
BAD_VARIANTS = (u"Variants must be between 1 and %d: choose a number in that range and try "
                u"again." % MAX_VARIANTS)
BAD_QUALITY = u"The quality must be auto, low, medium or high: choose one and try again."
OFF_LAYER = (u"The selection does not touch the layer '%s': select an area on it, or clear "
             u"the selection to edit the whole layer.")
NOT_EXPORTED = (u"GPT Image Edit could not write the layer to its temporary folder: check "
                u"the free disk space and try again.")
NO_RESULT = u"The GPT Image Edit worker returned no picture: try again."
UNREADABLE_RESULT = u"GPT Image Edit could not read a result of the worker: try again."
NOT_INSERTED = (u"GIMP could not insert the edited layers, so the image is unchanged: try "
                u"again.")
UNEXPECTED = (u"GPT Image Edit failed unexpectedly: the image is unchanged; please report "
              u"this with the text GIMP printed on its console.")
NO_KEY_REASON = (u"GPT Image Edit needs your WisGate API key before it can edit: enter it "
                 u"here and save, and the edit goes on.")


class GimpCallFailed(Exception):
    """An adapter's GIMP call failed (GIMP 3's GLib.Error, GIMP 2.10's RuntimeError); the
    core knows which step it was and says so."""


class Cancelled(Exception):
    """The user cancelled (the edit dialog, or the wait)."""


class Outcome(object):
    """How an edit ended: `status` is "success", "cancel" or "error" (with `message`, the
    one sentence to show)."""

    def __init__(self, status, message=u""):
        self.status = status
        self.message = message

    def __repr__(self):
        return "Outcome(%r, %r)" % (self.status, self.message)


class Arguments(object):
    """The procedure's arguments, checked. Built from the same keys on both GIMPs: the
    spec's argument names (prompt, model, size, quality, variants, use-selection)."""

    def __init__(self, values):
        self.prompt = (values.get("prompt") or u"").strip()
        self.model = (values.get("model") or u"").strip() or DEFAULT_MODEL
        self.size = (values.get("size") or u"").strip() or u"auto"
        self.quality = values.get("quality") or DEFAULT_QUALITY
        self.variants = values.get("variants", 1)
        self.use_selection = bool(values.get("use-selection", True))
        if not self.prompt:
            raise host.HostError(EMPTY_PROMPT)
        if self.quality not in QUALITIES:
            raise host.HostError(BAD_QUALITY)
        if isinstance(self.variants, bool) or not 1 <= int(self.variants) <= MAX_VARIANTS:
            raise host.HostError(BAD_VARIANTS)
        self.variants = int(self.variants)

    def for_job(self):
        """The keys the job file and the provenance parasite take."""
        return {"prompt": self.prompt, "model": self.model, "size": self.size,
                "quality": self.quality, "variants": self.variants}


class Plan(object):
    """What one edit sends: `region` of the layer (layer coordinates, full size) exported at
    `sent` (width, height), the size the API gets it at; `layer_box` is the layer in image
    coordinates; `with_selection` says whether a selection mask goes along."""

    def __init__(self, layer, layer_box, region, sent, with_selection):
        self.layer = layer
        self.layer_box = layer_box
        self.region = region
        self.sent = sent
        self.with_selection = with_selection

    def region_in_image(self):
        return geometry.Box(self.layer_box.x + self.region.x, self.layer_box.y + self.region.y,
                            self.region.width, self.region.height)


class Capture(object):
    """What the edit was asked on, taken when the user confirmed: whatever happens to the
    image while the edit is pending, the result is placed as asked. `selection` is the
    adapter's copy of the selection's pixels over the region (None without a selection);
    `source` identifies the source layer for the provenance record and for finding earlier
    results of it."""

    def __init__(self, document, plan):
        self.image_size = document.image_size()
        self.image_name = document.image_name()
        self.selection = (document.capture_selection(plan.region_in_image())
                          if plan.with_selection else None)
        self.source = {"name": document.layer_name(plan.layer),
                       "tattoo": document.tattoo(plan.layer)}


class Document(object):
    """What the core asks of a GIMP. An adapter implements every method that raises
    NotImplementedError; item handles are whatever its GIMP uses (layers, groups). A GIMP
    call that fails raises GimpCallFailed."""

    # -- questions ----------------------------------------------------------------------
    def drawables(self):
        """The drawables the user chose (a list)."""
        raise NotImplementedError

    def kind(self, drawable):
        """"layer", "group", "layer_mask" or "channel"."""
        raise NotImplementedError

    def layer_of_mask(self, mask):
        raise NotImplementedError

    def layer_name(self, layer):
        raise NotImplementedError

    def layer_box(self, layer):
        """(offset_x, offset_y, width, height) of the layer in the image."""
        raise NotImplementedError

    def selection_bounds(self):
        """(x1, y1, x2, y2) of the selection in image coordinates (x2, y2 exclusive), or None
        without a selection."""
        raise NotImplementedError

    def ask_arguments(self):
        """The argument values (a dict with the spec's names): from the edit dialog when the
        run is interactive, None when the user cancelled it."""
        raise NotImplementedError

    def image_size(self):
        """(width, height) of the image."""
        raise NotImplementedError

    def image_name(self):
        """The image's name as GIMP shows it (for the results history)."""
        raise NotImplementedError

    def tattoo(self, item):
        """The item's tattoo: its identity in the image, kept in XCF files."""
        raise NotImplementedError

    def is_valid(self, item):
        """False once the item was deleted (or its image closed)."""
        raise NotImplementedError

    def image_is_open(self):
        raise NotImplementedError

    def layers_in(self, parent):
        """The layers of `parent` (None: the image's top level), top first."""
        raise NotImplementedError

    def children(self, item):
        """A group's layers, top first; [] for any other item."""
        raise NotImplementedError

    def parasite(self, item, name):
        """The text of the item's parasite `name`, or None."""
        raise NotImplementedError

    def offer_settings(self, reason):
        """Interactive only: open the settings dialog saying `reason`; True once the user
        saved settings (the edit then goes on), False when cancelled or not interactive."""
        return False

    # -- export -------------------------------------------------------------------------
    def export_layer(self, layer, region, size, path):
        """Write `region` (a geometry.Box in layer coordinates) of the layer, scaled to
        `size` (width, height), as an 8-bit RGB(A) PNG at `path`, compressed fast."""
        raise NotImplementedError

    def export_selection(self, region, size, path):
        """Write the selection over `region` (image coordinates), scaled to `size`, as an
        8-bit grayscale PNG with the selection's own values (no tone curve); black where
        the region reaches beyond the canvas."""
        raise NotImplementedError

    # -- results ------------------------------------------------------------------------
    def load_layer(self, path):
        """The picture at `path` as a new layer of the image, not yet inserted."""
        raise NotImplementedError

    def new_group(self, name):
        raise NotImplementedError

    def parent_and_position(self, layer):
        """Where `layer` sits: its parent group (None at the top level) and its index."""
        raise NotImplementedError

    def insert(self, item, parent, position):
        raise NotImplementedError

    def set_name(self, item, name):
        raise NotImplementedError

    def scale(self, item, width, height):
        """Scale an inserted layer to width x height (nothing when it already is)."""
        raise NotImplementedError

    def move(self, item, x, y):
        raise NotImplementedError

    def capture_selection(self, region):
        """A copy of the selection's values over `region` (a Box in image coordinates, at
        full size; 0 beyond the canvas), in whatever form add_mask takes back."""
        raise NotImplementedError

    def add_mask(self, item):
        """Give a layer not yet inserted a layer mask (its content comes with fill_mask). Added
        before the layer enters the image, the mask is part of the layer for undo and redo,
        and the layer itself, not its mask, stays the one being edited."""
        raise NotImplementedError

    def fill_mask(self, item, selection):
        """Write the captured selection into the mask of an inserted layer of its size."""
        raise NotImplementedError

    def set_visible(self, item, visible):
        raise NotImplementedError

    def new_image(self, width, height):
        """The image was closed while the edit was pending: make a new image of that size
        the one results go to (shown by show_new_image)."""
        raise NotImplementedError

    def show_new_image(self):
        """Open a window on the image made by new_image."""
        raise NotImplementedError

    def attach_parasite(self, item, name, text):
        """Attach a persistent parasite to an inserted item as an undoable step (inside the
        edit's undo group), so that undo takes it along without a word."""
        raise NotImplementedError

    def select(self, item):
        """Make `item` the selected (active) layer."""
        raise NotImplementedError

    def remove(self, item):
        """Take an inserted item (and what it holds) out of the image."""
        raise NotImplementedError

    def delete(self, item):
        """Delete an item that was never inserted."""
        raise NotImplementedError

    def undo_group_start(self):
        raise NotImplementedError

    def undo_group_end(self):
        raise NotImplementedError

    def flush(self):
        """Show the changes (GIMP's displays_flush)."""

    # -- waiting ------------------------------------------------------------------------
    def progress_start(self, text):
        raise NotImplementedError

    def progress_update(self, text, fraction):
        raise NotImplementedError

    def progress_end(self):
        raise NotImplementedError

    def wait_for_worker(self, run):
        """Wait for the worker, its stage and the elapsed time in GIMP's progress; returns
        the manifest. Every GIMP call stays on this (the plug-in's main) thread."""
        return run.wait(on_tick=lambda current: self.progress_update(
            progress_text(current), progress_fraction(current)))


def progress_text(run):
    """The stage and the seconds since OK: "Sending 1.2 MB to gpt-image-2 (1 s)", "Waiting
    for gpt-image-2 (14 s)" (the worker's own wait count is left out: one clock only)."""
    message = WAIT_COUNT.sub(u"", run.last_message)
    return u"%s (%d s)" % (message, int(run.elapsed))


def progress_fraction(run):
    return PROGRESS_CEILING * run.elapsed / (run.elapsed + PROGRESS_HALF_SECONDS)


# ---------------------------------------------------------------------------------------
# The edit.

def edit(document, entry_dir):
    """Run one edit on `document`; returns its Outcome. Nothing escapes: every failure,
    foreseen or not, ends as one sentence with the image as it was."""
    try:
        layer = choose_layer(document)
        worker = host.find_worker(entry_dir)
        values = document.ask_arguments()
        if values is None:
            return Outcome("cancel")
        arguments = Arguments(values)
        plan = plan_edit(document, layer, arguments)
        capture = Capture(document, plan)
        document.progress_start(u"GPT Image Edit: preparing")
        try:
            with host.Job() as job:
                export(document, plan, job)
                job.write(arguments.for_job(), job_layer(plan),
                          source_origin=(plan.region.x, plan.region.y),
                          source_size=(plan.region.width, plan.region.height),
                          with_selection=plan.with_selection,
                          image_name=capture.image_name)
                manifest = run_worker(document, worker, job)
                document.progress_update(placing_text(manifest), PROGRESS_CEILING)
                place_results(document, plan, capture, job, manifest, arguments)
        finally:
            document.progress_end()
        document.flush()
    except Cancelled:
        return Outcome("cancel")
    except host.HostError as error:
        return Outcome("error", error.args[0] if error.args else UNEXPECTED)
    except Exception:  # a bug of ours or a GIMP surprise: a sentence, never a traceback
        traceback.print_exc(file=sys.stderr)
        return Outcome("error", UNEXPECTED)
    return Outcome("success")


def choose_layer(document):
    """The layer to edit: the one chosen layer, or the layer of a chosen layer mask (the
    retoucher painting a mask means that layer)."""
    drawables = document.drawables()
    if len(drawables) != 1:
        raise host.HostError(NO_LAYER)
    drawable = drawables[0]
    kind = document.kind(drawable)
    if kind == "layer_mask":
        return document.layer_of_mask(drawable)
    if kind == "group":
        raise host.HostError(GROUP)
    if kind != "layer":
        raise host.HostError(NOT_A_LAYER)
    return drawable


def plan_edit(document, layer, arguments):
    """The region to send (the layer, or the part around the selection) and its size."""
    offset_x, offset_y, width, height = document.layer_box(layer)
    layer_box = geometry.Box(offset_x, offset_y, width, height)
    selected = None
    if arguments.use_selection:
        selected = selection_on_layer(document, layer, layer_box)
    region = geometry.plan_region(width, height, selected)
    try:
        canvas = geometry.request_size(region.width, region.height, arguments.model,
                                       arguments.size)
    except geometry.SizeError as error:
        raise host.HostError(error.args[0])
    sent = geometry.sent_size(region.width, region.height, canvas[0], canvas[1])
    return Plan(layer, layer_box, region, sent, selected is not None)


def selection_on_layer(document, layer, layer_box):
    """The selection's bounds on the layer (a Box in layer coordinates), None without a
    selection; a selection beside the layer is a mistake worth saying."""
    bounds = document.selection_bounds()
    if bounds is None:
        return None
    x1, y1, x2, y2 = bounds
    left, top = max(x1, layer_box.x), max(y1, layer_box.y)
    right, bottom = min(x2, layer_box.right), min(y2, layer_box.bottom)
    if right <= left or bottom <= top:
        raise host.HostError(OFF_LAYER % document.layer_name(layer))
    return geometry.Box.from_bounds(left - layer_box.x, top - layer_box.y,
                                    right - layer_box.x, bottom - layer_box.y)


def job_layer(plan):
    box = plan.layer_box
    return {"width": box.width, "height": box.height, "offset_x": box.x, "offset_y": box.y}


def export(document, plan, job):
    try:
        document.export_layer(plan.layer, plan.region, plan.sent, job.source_path)
        if plan.with_selection:
            document.export_selection(plan.region_in_image(), plan.sent, job.selection_path)
    except GimpCallFailed:
        raise host.HostError(NOT_EXPORTED)


def run_worker(document, worker, job):
    """The worker's manifest. A missing key, in an interactive edit, opens the settings
    (saying why) and the edit goes on once a key is saved."""
    while True:
        try:
            run = host.WorkerRun(worker, job)
        except OSError:
            raise host.HostError(host.NOT_INSTALLED)
        try:
            with run:
                return document.wait_for_worker(run)
        except host.WorkerFailed as failure:
            if failure.kind != "missing_key" or not document.offer_settings(NO_KEY_REASON):
                raise
            job.clear_results()


def placing_text(manifest):
    count = len(manifest.get("results") or [])
    return u"Placing %d result%s" % (count, u"" if count == 1 else u"s")


# ---------------------------------------------------------------------------------------
# The results.

def place_results(document, plan, capture, job, manifest, arguments):
    """In one undo group, the results above the source layer and above any earlier result
    of it (one layer, or a group of variants with the first one showing), scaled to the
    placement, masked by the selection captured at OK, visible, the result selected. A
    deleted source puts them on top of the image; a closed image, into a new one. On any
    failure nothing stays behind."""
    results = sorted(manifest.get("results") or [], key=lambda entry: entry["variant"])
    if not results:
        raise host.HostError(NO_RESULT)
    in_new_image = not document.image_is_open()
    if in_new_image:
        document.new_image(*capture.image_size)
    loaded = load_results(document, job, results)  # before any change to the image
    placement = manifest["placement"]
    name = host.layer_name(arguments.prompt)
    parent, position = where_results_go(document, plan.layer, capture.source)
    floating = [layer for _, layer in loaded]
    inserted = []
    document.undo_group_start()
    try:
        if capture.selection is not None:
            for _, layer in loaded:
                document.add_mask(layer)
        top = loaded[0][1] if len(loaded) == 1 else document.new_group(name)
        if top not in floating:
            floating.append(top)
        document.insert(top, parent, position)
        floating.remove(top)
        inserted.append(top)
        document.set_visible(top, True)
        for index, (entry, layer) in enumerate(loaded):
            if layer is top:
                document.set_name(layer, name)
            else:
                document.set_name(layer, u"variant %d" % entry["variant"])
                document.insert(layer, top, index)
                floating.remove(layer)
                document.set_visible(layer, index == 0)
            document.scale(layer, placement["width"], placement["height"])
            document.move(layer, placement["x"], placement["y"])
            if capture.selection is not None:
                document.fill_mask(layer, capture.selection)
            document.attach_parasite(layer, host.PARASITE_NAME,
                                     host.provenance(manifest, arguments.for_job(),
                                                     entry["variant"], capture.source))
        document.select(loaded[0][1])
    except Exception as error:
        if inserted:  # the single layer or the group: it takes the inserted variants along
            document.remove(inserted[0])
        for item in floating:
            document.delete(item)
        if isinstance(error, GimpCallFailed):
            raise host.HostError(NOT_INSERTED)
        raise
    finally:
        document.undo_group_end()
    if in_new_image:
        document.show_new_image()


def where_results_go(document, layer, source):
    """(parent, position): directly above the source layer, or above the topmost earlier
    result of it among its neighbours, so that a new result is never hidden under an old
    one; on top of the image when the source layer is gone."""
    if not document.is_valid(layer):
        return None, 0
    parent, position = document.parent_and_position(layer)
    for index, item in enumerate(document.layers_in(parent)[:position]):
        if is_result_of(document, item, source["tattoo"]):
            return parent, index
    return parent, position


def is_result_of(document, item, tattoo):
    """Whether `item` (a result layer, or a group of variants) came from the layer with
    `tattoo`, as its provenance parasite records."""
    for candidate in [item] + list(document.children(item)):
        record = host.read_provenance(document.parasite(candidate, host.PARASITE_NAME))
        source = record.get("source")
        if isinstance(source, dict) and source.get("tattoo") == tattoo:
            return True
    return False


def load_results(document, job, results):
    loaded = []
    try:
        for entry in results:
            loaded.append((entry, document.load_layer(job.result_path(entry))))
    except GimpCallFailed:
        for _, layer in loaded:
            document.delete(layer)
        raise host.HostError(UNREADABLE_RESULT)
    return loaded
