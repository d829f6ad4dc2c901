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

try:  # the installer's copies of the worker's own modules, beside this file
    import gpt_image_edit_geometry as geometry
    import gpt_image_edit_pricing as pricing
except ImportError:  # in the repository (tests): the worker package itself
    from gpt_image_edit import geometry, pricing

QUALITIES = ("auto", "low", "medium", "high")
BLENDS = ("none", "feather", "seamless")  # docs/blending.md
DEFAULT_BLEND = "seamless"
DEFAULT_MODEL = "gpt-image-2"
DEFAULT_QUALITY = "high"
MAX_VARIANTS = 10
# The worker's default for the partial_images setting (its settings.py), for estimates made
# before the worker runs.
DEFAULT_PARTIAL_IMAGES = host.DEFAULT_PARTIAL_IMAGES
COST_LIMIT_KIND = "cost_limit"
MISSING_KEY_KIND = "missing_key"
# The worker reports no fraction, only elapsed time: the bar creeps towards this so it
# keeps moving (GIMP is alive) without ever claiming to be done.
PROGRESS_CEILING = 0.95
PROGRESS_HALF_SECONDS = 30.0
WAIT_COUNT = re.compile(u": \\d+ s$")  # "Waiting for gpt-image-2: 12 s"
# GIMP hands out a drawable's preview (gimp-drawable-sub-thumbnail) at most this many pixels
# wide and high.
PREVIEW_SIDE = 1024
# How close to a whole pixel a preview tile's scaled origin must fall, so that GIMP's
# rounding of it (rint, or floor of x + 0.5) cannot go either way.
ROUNDING_MARGIN = 1e-6

NO_LAYER = u"GPT Image Edit works on one layer: select exactly one layer and try again."
NOT_A_LAYER = (u"GPT Image Edit works on a layer, not on a channel: select a layer and try "
               u"again.")
GROUP = (u"GPT Image Edit cannot edit a layer group: select one layer inside it and try "
         u"again.")
EMPTY_PROMPT = u"The prompt is empty: describe what should change and try again."
BAD_VARIANTS = (u"Variants must be between 1 and %d: choose a number in that range and try "
                u"again." % MAX_VARIANTS)
BAD_QUALITY = u"The quality must be auto, low, medium or high: choose one and try again."
BAD_BLEND = u"The blend must be none, feather or seamless: choose one and try again."
BAD_REFERENCE = (u"The reference must be a layer, not a layer group or a channel: choose one "
                 u"layer, or no reference, and try again.")
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
NOT_GPT_IMAGE = (u"%s gets no live previews and no reference pictures: only the GPT image "
                 u"models (gpt-image-2, gpt-image-1.5, gpt-image-1) send them.")
ABOVE_LIMIT = u"Above your spending limit of $%.2f: you will be asked before it is sent."
UNCHECKED_LIMIT = (u"Your spending limit of $%.2f cannot be checked without a price: you "
                   u"will be asked before it is sent.")
NO_PRICE = u"no price for %s in the price table"
BAD_PRICES = u"the prices setting is not usable"
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
    spec's argument names (prompt, model, size, quality, variants, use-selection, blend,
    reference). `reference` is the adapter's drawable handle or None; a script that knows
    only the older arguments gets the defaults (seamless, no reference)."""

    def __init__(self, values, require_prompt=True):
        self.prompt = (values.get("prompt") or u"").strip()
        self.model = (values.get("model") or u"").strip() or DEFAULT_MODEL
        self.size = (values.get("size") or u"").strip() or u"auto"
        self.quality = values.get("quality") or DEFAULT_QUALITY
        self.variants = values.get("variants", 1)
        self.use_selection = bool(values.get("use-selection", True))
        self.blend = values.get("blend") or DEFAULT_BLEND
        self.reference = values.get("reference")
        if require_prompt and not self.prompt:
            raise host.HostError(EMPTY_PROMPT)
        if self.quality not in QUALITIES:
            raise host.HostError(BAD_QUALITY)
        if self.blend not in BLENDS:
            raise host.HostError(BAD_BLEND)
        if isinstance(self.variants, bool) or not 1 <= int(self.variants) <= MAX_VARIANTS:
            raise host.HostError(BAD_VARIANTS)
        self.variants = int(self.variants)

    def for_job(self):
        """The keys the job file and the provenance parasite take."""
        return {"prompt": self.prompt, "model": self.model, "size": self.size,
                "quality": self.quality, "variants": self.variants, "blend": self.blend}


class Plan(object):
    """What one edit sends: `region` of the layer (layer coordinates, full size; the worker
    scales it to the size the API gets); `layer_box` is the layer in image coordinates;
    `with_selection` says whether a selection mask goes along; `scaled` is how GIMP can
    hand the region over already scaled down (a ScaledExport), or None."""

    def __init__(self, layer, layer_box, region, with_selection, reference=None, scaled=None):
        self.layer = layer
        self.layer_box = layer_box
        self.region = region
        self.with_selection = with_selection
        self.reference = reference  # the reference layer to send after the picture, or None
        self.reference_size = None  # its (width, height), for the estimate
        self.scaled = scaled
        self.source_scale = None  # (numerator, denominator) once the source went scaled

    def region_in_image(self):
        return geometry.Box(self.layer_box.x + self.region.x, self.layer_box.y + self.region.y,
                            self.region.width, self.region.height)


class ScaledExport(object):
    """A whole layer handed over at the size the API gets it, from GIMP's own previews of
    the layer (docs/job-protocol.md, "A scaled source"): scaled by numerator/denominator to
    `size`, read as `tiles` (PreviewTile), none larger than GIMP gives out."""

    def __init__(self, scale, size, tiles):
        self.scale = scale
        self.size = size
        self.tiles = tiles


class PreviewTile(object):
    """One gimp-drawable-sub-thumbnail call: the source rectangle (`src`, layer pixels:
    x, y, width, height) only sets GIMP's scale and origin, `dest` (width, height) is the
    preview's size, and `at` (x, y) where it goes in the scaled picture. GIMP scales by
    min(dest width / src width, dest height / src height) and starts at the source origin
    times that, rounded."""

    def __init__(self, src, dest, at):
        self.src = src
        self.dest = dest
        self.at = at


class Capture(object):
    """What the edit was asked on, taken when the user confirmed: whatever happens to the
    image while the edit is pending, the result is placed as asked. `selection` is the
    selection over the region as raw 8-bit grey at full size (selection_pixels; None
    without a selection): the job's selection and, later, the results' masks;
    `source` identifies the source layer for the provenance record and for finding earlier
    results of it; `reference_name` is the reference layer's name (None without one)."""

    def __init__(self, document, plan):
        self.image_size = document.image_size()
        self.image_name = document.image_name()
        try:
            self.selection = (document.selection_pixels(plan.region_in_image())
                              if plan.with_selection else None)
        except GimpCallFailed:
            raise host.HostError(NOT_EXPORTED)
        self.source = {"name": document.layer_name(plan.layer),
                       "tattoo": document.tattoo(plan.layer)}
        self.reference_name = (document.layer_name(plan.reference)
                               if plan.reference is not None else None)


class Document(object):
    """What the core asks of a GIMP. An adapter implements every method that raises
    NotImplementedError; item handles are whatever its GIMP uses (layers, groups). A GIMP
    call that fails raises GimpCallFailed.

    Pixels cross as raw bytes at full size both ways (docs/job-protocol.md): the worker
    scales the region down and each result back up (Pillow, a fraction of a second where
    GIMP's own scale of a 24 MP layer takes seconds), and no file goes through GIMP's file
    plug-ins (nothing reaches File > Open Recent)."""

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

    def item_id(self, item):
        """The item's identity among all open images (GIMP's item ID)."""
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
    def layer_pixels(self, layer, region):
        """`region` (a geometry.Box in layer coordinates) of the layer at full size, as
        (mode, raw 8-bit bytes, rows top first), mode "RGBA" or "RGB": 8-bit sRGB values
        (R'G'B'), converted from the image's colour profile and precision (the model works
        in sRGB; docs/blending.md, "In GIMP"). The layer may be in another open image (a
        reference)."""
        raise NotImplementedError

    def selection_pixels(self, region):
        """The selection over `region` (image coordinates) as raw 8-bit grey bytes with
        the selection's own values (no tone curve); 0 beyond the canvas."""
        raise NotImplementedError

    def layer_preview(self, layer, src, dest):
        """GIMP's preview of the layer (gimp-drawable-sub-thumbnail; `src` x, y, width,
        height in layer pixels, `dest` width, height: PreviewTile) as raw 8-bit sRGB RGB
        bytes, rows top first; None when the preview is not the layer's own pixels so (a
        layer with alpha, an image that stores other than sRGB values or of another
        precision, previews turned off in GIMP's preferences): the edit then reads the
        layer at full size."""
        return None

    # -- results ------------------------------------------------------------------------
    def new_layer(self, width, height, mode, pixels):
        """A new layer of the image, not yet inserted, holding raw 8-bit `pixels` of
        `mode` ("RGBA" or "RGB", sRGB R'G'B' values, converted to the image's profile and
        precision as layer_pixels converted from them)."""
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

    def move(self, item, x, y):
        raise NotImplementedError

    def add_mask(self, item):
        """Give a layer not yet inserted a layer mask (its content comes with fill_mask). Added
        before the layer enters the image, the mask is part of the layer for undo and redo,
        and the layer itself, not its mask, stays the one being edited."""
        raise NotImplementedError

    def fill_mask(self, item, pixels):
        """Write raw 8-bit grey `pixels` of the item's size into the mask add_mask gave an
        inserted layer, 255 where the layer shows; no undo step of its own."""
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

    # -- live previews and cost ---------------------------------------------------------
    # Whether this run shows live previews (show_preview does something): without, the job
    # asks for none (partial_images 0), since each costs output tokens.
    shows_previews = False

    def show_preview(self, preview):
        """Show the live preview (a host.Preview: raw pixels to be scaled to its
        `placement`, x, y, width, height in image coordinates) where the result will land,
        replacing the one shown before. Called on the host's thread while the worker runs.
        Never enters the undo history; the default shows nothing."""

    def clear_preview(self):
        """Take away whatever show_preview showed (called once the worker ended, whatever
        the outcome, before the results are placed)."""

    def confirm_cost(self, message):
        """The worker refused an edit estimated above the spending limit; `message` says so.
        True to send it all the same (an interactive run asks the user, and raises Cancelled
        when the user says no: the edit ends without another message), False to stop with
        that message (non-interactive runs)."""
        return False

    def show_note(self, text):
        """A short line for the retoucher that needs no answer (what a placed edit cost):
        where it is seen without getting in the way, and not at all in a non-interactive
        run (the result's parasite keeps it)."""

    # -- waiting ------------------------------------------------------------------------
    # Whether the default run_worker (this process watching the worker) is the one used:
    # then the core starts the worker ahead, while the pixels are exported. An adapter that
    # runs it elsewhere says False.
    watches_worker = True

    def run_worker(self, worker, job):
        """Run the worker on the written job and return its manifest (HostError with the
        sentence when it failed, Cancelled when the user stopped it). The default watches
        it here (watch_worker); an adapter whose GIMP ends this process on Cancel runs it
        in a process of its own instead, so that it can take away what was shown."""
        return watch_worker(self, worker, job)

    def progress_start(self, text):
        raise NotImplementedError

    def progress_update(self, text, fraction):
        raise NotImplementedError

    def progress_end(self):
        raise NotImplementedError

    # What the core adds to every progress text while the worker runs: the estimate.
    progress_note = u""

    def wait_for_worker(self, run):
        """Wait for the worker, its stage, the elapsed time and the progress note in GIMP's
        progress; returns the manifest. Every GIMP call stays on this (the plug-in's main)
        thread."""
        return run.wait(on_tick=lambda current: self.progress_update(
            progress_text(current, self.progress_note), progress_fraction(current)))


def progress_text(run, note=u""):
    """The stage, the seconds since OK and the estimate: "Sending 1.2 MB to gpt-image-2
    (1 s, estimate $0.2100)", "Waiting for gpt-image-2 (14 s, estimate $0.2100)" (the
    worker's own wait count is left out: one clock only)."""
    message = WAIT_COUNT.sub(u"", run.last_message)
    seconds = u"%d s" % int(run.elapsed)
    return u"%s (%s)" % (message, u", ".join([seconds, note]) if note else seconds)


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
        plan.reference = choose_reference(document, arguments.reference, layer)
        if plan.reference is not None:
            plan.reference_size = tuple(document.layer_box(plan.reference)[2:])
        capture = Capture(document, plan)
        estimated, _ = estimated_cost(plan, arguments, cost_settings_of(document))
        document.progress_note = estimate_note(estimated)
        document.progress_start(u"GPT Image Edit: preparing (%s)" % document.progress_note)
        try:
            with host.Job() as job:
                # Started before the export when this process watches it, the worker sets
                # itself up while GIMP hands over the pixels (a 24 MP layer takes a fifth of
                # a second or more).
                with worker_ahead(document, worker, job) as first_run:
                    mode, references = export(document, plan, capture, job)
                    manifest = run_job(document, worker, job, plan, capture, arguments,
                                       mode, references, first_run)
                document.progress_update(placing_text(manifest), PROGRESS_CEILING)
                place_results(document, plan, capture, job, manifest, arguments)
        finally:
            document.progress_end()
        document.flush()
        document.show_note(cost_text(manifest, estimated))
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


def choose_reference(document, reference, layer):
    """The layer to send as the reference, or None: no reference, or the edited layer itself
    (GIMP 2.10's dialog says "no reference" so, having no empty choice for a drawable). A
    chosen layer mask means its layer, as for the edited drawable."""
    if reference is None:
        return None
    kind = document.kind(reference)
    if kind == "layer_mask":
        reference = document.layer_of_mask(reference)
    elif kind != "layer":
        raise host.HostError(BAD_REFERENCE)
    if document.item_id(reference) == document.item_id(layer):
        return None
    return reference


def plan_edit(document, layer, arguments):
    """The region to send (the layer, or the part around the selection); a size the model
    cannot take is refused here, before anything is exported."""
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
    scaled = scaled_export(width, height, canvas) if selected is None else None
    return Plan(layer, layer_box, region, selected is not None, scaled=scaled)


def scaled_export(width, height, canvas):
    """How a whole width x height layer, sent in a request `canvas` (width, height), can
    come out of GIMP already scaled down (a ScaledExport), or None: it reaches the API at
    its own size, or its exact scale cannot be asked of GIMP's previews (preview_tiles)."""
    scale = geometry.exact_scale(width, height, canvas[0], canvas[1])
    if scale is None:
        return None
    tiles = preview_tiles(width, height, scale)
    if tiles is None:
        return None
    return ScaledExport(scale, geometry.scaled_size(width, height, scale[0], scale[1]), tiles)


def preview_tiles(width, height, scale):
    """The PreviewTiles that cover a width x height layer scaled by `scale` (numerator,
    denominator; geometry.exact_scale), each scaled by exactly that factor, or None when
    GIMP cannot be asked for it.

    Along the side the scale was taken from, a tile spans a whole number of steps of
    `numerator` preview pixels for `denominator` layer pixels, so GIMP's scale is the
    fraction itself; along the other side the source is one pixel long, which never binds
    (the smaller ratio is GIMP's scale). The last tile of a row or column is moved back to
    end at the picture's edge, overlapping its neighbour."""
    numerator, denominator = scale
    factor = float(numerator) / denominator  # what GIMP computes, in the same double
    sides = (width, height)
    scaled = geometry.scaled_size(width, height, numerator, denominator)
    bound = 0 if width % denominator == 0 else 1  # holds whole denominators: exact_scale's
    steps = PREVIEW_SIDE // numerator
    if steps == 0 or sides[bound] % denominator != 0:
        return None
    axes = []  # per axis: (scaled start, scaled length, source start, source length)
    for axis in (0, 1):
        if axis == bound:
            spans = [(numerator * unit, numerator * count, denominator * unit,
                      denominator * count)
                     for unit, count in _spans(sides[axis] // denominator, steps)]
        else:
            spans = []
            for at, length in _spans(scaled[axis], PREVIEW_SIDE):
                origin = _source_origin(at, factor, sides[axis])
                if origin is None:
                    return None
                spans.append((at, length, origin, 1))
        axes.append(spans)
    return [PreviewTile((x[2], y[2], x[3], y[3]), (x[1], y[1]), (x[0], y[0]))
            for y in axes[1] for x in axes[0]]


def _spans(length, most):
    """(start, count) pieces of at most `most` that cover 0..length, the last one moved
    back to end at `length`."""
    count = min(most, length)
    starts = list(range(0, length - count, count)) + [length - count]
    return [(start, count) for start in starts]


def _source_origin(at, factor, side):
    """The first layer pixel whose scaled position GIMP rounds to `at`, safely away from a
    half; None when there is none on the layer."""
    first = max(0, int((at - 0.5) / factor) - 1)
    for origin in range(first, min(side, first + 4 + int(1 / factor))):
        if abs(origin * factor - at) < 0.5 - ROUNDING_MARGIN:
            return origin
    return None


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


def export(document, plan, capture, job):
    """The region for the worker, raw (and the selection captured over it), and the
    reference layer whole; returns the source's mode and the job's references. A whole
    layer goes scaled down to what the API gets when GIMP's previews can give it
    (plan.source_scale is then set), else at full size."""
    try:
        pixels = scaled_pixels(document, plan) if plan.scaled is not None else None
        if pixels is not None:
            mode, plan.source_scale = "RGB", plan.scaled.scale
        else:
            mode, pixels = document.layer_pixels(plan.layer, plan.region)
        host.write_raw(job.source_path, pixels)
        del pixels  # up to 96 MB: gone before the selection is written
        if capture.selection is not None:
            host.write_raw(job.selection_path, capture.selection)
        return mode, export_references(document, plan, capture, job)
    except (GimpCallFailed, IOError, OSError):
        raise host.HostError(NOT_EXPORTED)


def scaled_pixels(document, plan):
    """The whole layer at plan.scaled's size as raw RGB bytes, put together from GIMP's
    previews of it (a 24 MP layer: a twentieth of a second, against half a second to read
    it whole and scale it in the worker); None when GIMP gives none (layer_preview)."""
    scaled = plan.scaled
    row = scaled.size[0] * 3
    picture = bytearray(row * scaled.size[1])
    for tile in scaled.tiles:
        pixels = document.layer_preview(plan.layer, tile.src, tile.dest)
        tile_row = tile.dest[0] * 3
        if pixels is None or len(pixels) != tile_row * tile.dest[1]:
            return None
        x, y = tile.at
        for line in range(tile.dest[1]):
            start = (y + line) * row + x * 3
            picture[start:start + tile_row] = pixels[line * tile_row:(line + 1) * tile_row]
    return picture


def export_references(document, plan, capture, job):
    """The reference layer's pixels, whole and raw (the worker scales them down), as the
    job's `references` entries (docs/job-protocol.md)."""
    if plan.reference is None:
        return []
    _, _, width, height = document.layer_box(plan.reference)
    mode, pixels = document.layer_pixels(plan.reference, geometry.Box(0, 0, width, height))
    path = job.reference_path(1)
    host.write_raw(path, pixels)
    return [{"path": job.relative(path), "name": capture.reference_name, "pixels": mode,
             "width": width, "height": height}]


def run_job(document, worker, job, plan, capture, arguments, mode, references, first_run):
    """Write the job and run the worker; an estimate above the spending limit is sent only
    when the document confirms it (then with a second worker start). `mode` is the raw
    source's and `references` the job's reference entries (export); `first_run` the worker
    started ahead of the job (worker_ahead), or None."""
    def write(cost_confirmed):
        job.write(arguments.for_job(), job_layer(plan), mode,
                  source_origin=(plan.region.x, plan.region.y),
                  source_size=(plan.region.width, plan.region.height),
                  with_selection=plan.with_selection, cost_confirmed=cost_confirmed,
                  image_name=capture.image_name, references=references,
                  source_scale=plan.source_scale,
                  # Previews cost output tokens: none is asked for that nobody would see.
                  partial_images=None if document.shows_previews else 0)

    write(False)
    try:
        return run_worker(document, worker, job, first_run)
    except host.HostError as error:
        if error.kind != COST_LIMIT_KIND or not document.confirm_cost(error.args[0]):
            raise
    write(True)
    return run_worker(document, worker, job)


def run_worker(document, worker, job, first_run=None):
    """The worker's manifest, from `first_run` (a worker waiting for its start) or a
    worker started now. A missing key, in an interactive edit, opens the settings (saying
    why) and the edit goes on once a key is saved."""
    run = first_run
    while True:
        try:
            return run_worker_once(document, worker, job, run)
        except host.HostError as error:
            if error.kind != MISSING_KEY_KIND or not document.offer_settings(NO_KEY_REASON):
                raise
            job.clear_results()
            run = None


class NoRun(object):
    """worker_ahead's answer when no worker starts ahead: the context gives None."""

    def __enter__(self):
        return None

    def __exit__(self, *exc_info):
        return False


def worker_ahead(document, worker, job):
    """A worker started before its job is written (it waits for start()), as a context that
    never leaves it running; NoRun when the document runs the worker elsewhere (GIMP's
    live previews: Document.run_worker)."""
    if not document.watches_worker:
        return NoRun()
    return new_run(document, worker, job, wait_for_start=True)


def run_worker_once(document, worker, job, run=None):
    """The manifest of `run` (a worker started ahead, told to start now) or of the
    document's own run of the worker."""
    if run is None:
        return document.run_worker(worker, job)
    return watch_worker(document, worker, job, run)


def new_run(document, worker, job, wait_for_start=False):
    """A worker started for `job` (host.WorkerRun), its previews shown by the document."""
    try:
        return host.WorkerRun(worker, job, on_preview=document.show_preview,
                              wait_for_start=wait_for_start)
    except OSError:
        raise host.HostError(host.NOT_INSTALLED)


def watch_worker(document, worker, job, run=None):
    """Run the worker (`run`, started ahead, or one started now), its progress and live
    previews shown by `document`, the previews taken away again whatever the outcome;
    returns the manifest."""
    if run is None:
        run = new_run(document, worker, job)
    else:
        run.start()
    try:
        with run:
            return document.wait_for_worker(run)
    finally:
        if run.previews:
            document.clear_preview()


def placing_text(manifest):
    count = len(manifest.get("results") or [])
    return u"Placing %d result%s" % (count, u"" if count == 1 else u"s")


def estimate(plan, arguments, partial_images=DEFAULT_PARTIAL_IMAGES, prices=None):
    """What the edit planned would cost, before anything runs (pricing.estimate: tokens and
    `cost_usd`, None when the model has no price): for a dialog's estimate line or the
    progress text. `prices` is the merged price table (None: the built-in one)."""
    width, height = geometry.request_size(plan.region.width, plan.region.height,
                                          arguments.model, arguments.size)
    # The reference counts at its own size: the worker scales it down as the model would.
    references = [plan.reference_size] if plan.reference_size else []
    return pricing.estimate(arguments.model, width, height, arguments.quality,
                            arguments.variants, previews_of(arguments, partial_images),
                            len(arguments.prompt), references, prices=prices)


def previews_of(arguments, partial_images):
    """The live previews an edit asks for: only the GPT image models stream them."""
    return partial_images if geometry.is_gpt_image(arguments.model) else 0


def cost_settings_of(document):
    """The cost settings as this edit uses them: a document that shows no live previews
    asks for none (run_job), so none is counted."""
    settings = host.cost_settings()
    if not document.shows_previews:
        settings.partial_images = 0
    return settings


def estimated_cost(plan, arguments, settings):
    """(USD or None, whether the `prices` setting is unusable) with the cost settings
    (host.cost_settings): a price table the worker would refuse leaves the cost unknown,
    never a wrong number."""
    try:
        prices = pricing.merged_prices(settings.prices)
    except pricing.PriceError:
        return None, True
    return estimate(plan, arguments, settings.partial_images, prices)["cost_usd"], False


def estimate_note(estimated):
    """The estimate (USD or None) in a few words, for the progress text: "estimate
    $0.2100", or "cost unknown"."""
    return u"cost unknown" if estimated is None else u"estimate %s" % pricing.format_usd(
        estimated)


def dialog_estimate(document, values, settings):
    """The edit dialog's estimate line for the values it holds now (the spec's argument
    names; the prompt may still be empty): the cost, what it is made of, the spending limit
    when above it, and what a model outside the GPT image families does not get. A value
    the edit would refuse gives the sentence it would say."""
    try:
        arguments = Arguments(values, require_prompt=False)
        plan = plan_edit(document, choose_layer(document), arguments)
    except host.HostError as error:
        return error.args[0]
    cost, unusable_prices = estimated_cost(plan, arguments, settings)
    if cost is None:
        why = BAD_PRICES if unusable_prices else NO_PRICE % arguments.model
        lines = [u"Estimated cost: unknown (%s)." % why]
        if settings.max_cost_usd is not None:  # the worker cannot keep the limit: it asks
            lines.append(UNCHECKED_LIMIT % settings.max_cost_usd)
    else:
        size = geometry.request_size(plan.region.width, plan.region.height, arguments.model,
                                     arguments.size)
        parts = [u"%dx%d" % size, arguments.quality, counted(arguments.variants, u"variant")]
        previews = previews_of(arguments, settings.partial_images)
        if previews:
            parts.append(counted(previews, u"preview"))
        lines = [u"Estimated cost: %s (%s)." % (pricing.format_usd(cost), u", ".join(parts))]
        if settings.max_cost_usd is not None and cost > settings.max_cost_usd:
            lines.append(ABOVE_LIMIT % settings.max_cost_usd)
    if not geometry.is_gpt_image(arguments.model):
        lines.append(NOT_GPT_IMAGE % arguments.model)
    return u"\n".join(lines)


def counted(number, noun):
    return u"%d %s%s" % (number, noun, u"" if number == 1 else u"s")


def cost_text(manifest, estimated):
    """What a placed edit cost, from the manifest's `cost_usd`, beside the estimate (USD or
    None): "GPT Image Edit: 1 result placed, cost $0.2134 (estimate $0.2100)."."""
    cost = manifest.get("cost_usd")
    placed = counted(len(manifest.get("results") or []), u"result")
    spent = u"cost unknown" if cost is None else u"cost %s" % pricing.format_usd(cost)
    if estimated is None:
        return u"GPT Image Edit: %s placed, %s." % (placed, spent)
    return u"GPT Image Edit: %s placed, %s (%s)." % (placed, spent, estimate_note(estimated))


# ---------------------------------------------------------------------------------------
# The results.

def place_results(document, plan, capture, job, manifest, arguments):
    """In one undo group, the results above the source layer and above any earlier result
    of it (one layer, or a group of variants with the first one showing), at the placement,
    masked by the selection captured at OK (or by the worker's mask of a blended result),
    visible, the result selected. A deleted source puts them on top of the image; a closed
    image, into a new one. On any failure nothing stays behind."""
    results = sorted(manifest.get("results") or [], key=lambda entry: entry["variant"])
    if not results:
        raise host.HostError(NO_RESULT)
    in_new_image = not document.image_is_open()
    if in_new_image:
        document.new_image(*capture.image_size)
    placement = manifest["placement"]
    masks = [mask_pixels(job, entry, placement) if entry.get("mask") else capture.selection
             for entry in results]
    loaded = load_results(document, job, results, placement)  # before any change
    name = host.layer_name(arguments.prompt)
    parent, position = where_results_go(document, plan.layer, capture.source)
    floating = [layer for _, layer in loaded]
    inserted = []
    document.undo_group_start()
    try:
        for mask, (_, layer) in zip(masks, loaded):
            if mask is not None:
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
            document.move(layer, placement["x"], placement["y"])
            if masks[index] is not None:
                document.fill_mask(layer, masks[index])
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


def load_results(document, job, results, placement):
    """Every result as a new layer, not yet inserted, from its raw pixels of the
    placement's size."""
    loaded = []
    try:
        for entry in results:
            mode = entry.get("pixels", "RGBA")
            pixels = host.read_raw(job.result_path(entry), placement["width"],
                                   placement["height"], mode)
            layer = document.new_layer(placement["width"], placement["height"], mode, pixels)
            del pixels  # a 24 MP result is 96 MB: one copy at a time
            loaded.append((entry, layer))
    except (GimpCallFailed, IOError, OSError, ValueError, KeyError):
        for _, layer in loaded:
            document.delete(layer)
        raise host.HostError(UNREADABLE_RESULT)
    return loaded


def mask_pixels(job, entry, placement):
    """A result's mask (docs/job-protocol.md, "Result masks"): raw grey of the placement's
    size."""
    try:
        return host.read_raw(job.result_path({"path": entry["mask"]}), placement["width"],
                             placement["height"], "L")
    except (IOError, OSError, ValueError):
        raise host.HostError(UNREADABLE_RESULT)
