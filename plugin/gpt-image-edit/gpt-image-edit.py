#!/usr/bin/env python3
"""GPT Image Edit for GIMP 3.0 and 3.2: Filters > AI > GPT Image Edit... and its settings.

This side is thin on purpose: GIMP's own Python has no requests or pillow, so the edit runs
in the worker (docs/job-protocol.md). Here we export the layer (and the selection) into a
private job folder, run the worker without blocking GIMP, and insert its results as new
layers in one undo group. Only GIMP (gi) and the standard library are used.
"""

import json
import os
import subprocess
import sys
import traceback

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402

ENTRY_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, ENTRY_DIR)
import gpt_image_edit_host as host  # noqa: E402

EDIT_PROCEDURE = "plug-in-gpt-image-edit"
SETTINGS_PROCEDURE = "plug-in-gpt-image-edit-settings"
HELP_DOMAIN = "gpt-image-edit"
MENU_PATH = "<Image>/Filters/AI"
SETTINGS_MENU = "Filters > AI > GPT Image Settings..."
QUALITIES = (("auto", "Auto"), ("low", "Low"), ("medium", "Medium"), ("high", "High"))
NO_KEY = (f"No API key is set: enter it in {SETTINGS_MENU} or set GPT_IMAGE_EDIT_API_KEY.")
POLL_MS = 100
PNG_COMPRESSION = 1
CHECK_TIMEOUT = 30.0  # seconds: a connection test answers quickly or not at all


class UserError(Exception):
    """Something the user can fix; its text is the one sentence to show."""


class Cancelled(Exception):
    """The user pressed Cancel while the worker ran."""


# ---------------------------------------------------------------------------------------
# Settings: the worker owns the settings file (its path rules, format and mode 0600).

def worker_settings(worker, changes=None):
    """The worker's `settings`: the file's values, never the key, and whether edits have a
    key at all. With changes, the worker first merges them into the file; the key travels
    on its standard input, never on a command line."""
    argv = [worker.python, "-m", "gpt_image_edit", "settings"]
    if changes is not None:
        argv.append("--update-from-stdin")
    try:
        done = subprocess.run(argv, input=json.dumps(changes or {}).encode("utf-8"),
                              capture_output=True, env=worker.environment(), timeout=60)
    except (OSError, subprocess.SubprocessError):
        raise host.HostError(host.NOT_INSTALLED) from None
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise host.HostError(lines[-1] if lines else host.NOT_INSTALLED)
    return json.loads(done.stdout.decode("utf-8"))


# ---------------------------------------------------------------------------------------
# The edit procedure.

def run_edit(procedure, run_mode, image, drawables, config, data):
    interactive = run_mode == Gimp.RunMode.INTERACTIVE
    try:
        layer = single_layer(drawables)
        worker = host.find_worker(ENTRY_DIR)
        settings = worker_settings(worker)
        if settings["problem"]:
            raise UserError(settings["problem"])
        if not settings["api_key_available"]:
            raise UserError(NO_KEY)
        if interactive and not show_edit_dialog(procedure, config):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        arguments = read_arguments(config)
        edit_layer(image, layer, worker, arguments, interactive)
    except Cancelled:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    except (UserError, host.HostError) as error:
        return fail(procedure, str(error))
    except Exception:  # anything unforeseen still gets a sentence, not a traceback
        traceback.print_exc()
        return fail(procedure, "GPT Image Edit failed unexpectedly: the image is unchanged; "
                               "please report this with the text GIMP printed on its console.")
    return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())


def fail(procedure, sentence):
    """An execution error carrying the sentence. GIMP shows it in a message when the user
    ran the procedure (a Gimp.message of our own would show it twice)."""
    return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                       GLib.Error(sentence))


def single_layer(drawables):
    if len(drawables) != 1:
        raise UserError("GPT Image Edit works on one layer: select exactly one layer and "
                        "try again.")
    layer = drawables[0]
    if not isinstance(layer, Gimp.Layer) or isinstance(layer, Gimp.LayerMask):
        raise UserError("GPT Image Edit works on a layer, not on a channel or mask: select a "
                        "layer and try again.")
    if isinstance(layer, Gimp.GroupLayer):
        raise UserError("GPT Image Edit cannot edit a layer group: select one layer inside "
                        "it and try again.")
    return layer


def read_arguments(config):
    arguments = {
        "prompt": (config.get_property("prompt") or "").strip(),
        "model": (config.get_property("model") or "").strip() or "gpt-image-2",
        "size": (config.get_property("size") or "").strip() or "auto",
        "quality": config.get_property("quality"),
        "variants": config.get_property("variants"),
        "use-selection": config.get_property("use-selection"),
    }
    if not arguments["prompt"]:
        raise UserError("The prompt is empty: describe what should change and try again.")
    return arguments


def show_edit_dialog(procedure, config):
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
    dialog.fill(["prompt-frame", "model", "size", "quality", "variants", "use-selection"])
    prompt.grab_focus()  # the prompt is what one types first
    confirmed = dialog.run()
    dialog.destroy()
    return confirmed


def edit_layer(image, layer, worker, arguments, interactive):
    selection = selection_on_layer(image, layer) if arguments["use-selection"] else None
    with host.Job() as job:
        region = plan_region(worker, layer, selection)
        export_source(layer, region, job.source_path)
        if selection is not None:
            export_selection(image, layer, region, job.selection_path)
        job.write(arguments, layer_geometry(layer), source_origin=(region[0], region[1]),
                  with_selection=selection is not None)
        manifest = run_worker(worker, job, interactive)
        insert_results(image, layer, job, manifest, arguments, selection is not None)
    Gimp.displays_flush()


def layer_geometry(layer):
    offset_x, offset_y = layer_offsets(layer)
    return {"width": layer.get_width(), "height": layer.get_height(),
            "offset_x": offset_x, "offset_y": offset_y}


def layer_offsets(layer):
    offsets = layer.get_offsets()
    return offsets[-2], offsets[-1]  # (x, y) or (success, x, y) depending on bindings


def selection_on_layer(image, layer):
    """The selection's bounds in layer coordinates, clipped to the layer; None when there
    is no selection."""
    _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    if not non_empty:
        return None
    offset_x, offset_y = layer_offsets(layer)
    left, top = max(x1 - offset_x, 0), max(y1 - offset_y, 0)
    right = min(x2 - offset_x, layer.get_width())
    bottom = min(y2 - offset_y, layer.get_height())
    if right <= left or bottom <= top:
        raise UserError(f"The selection does not touch the layer '{layer.get_name()}': "
                        "select an area on it, or clear the selection to edit the whole layer.")
    return left, top, right, bottom


def plan_region(worker, layer, selection):
    """(x, y, width, height) in layer coordinates of the part of the layer to export: the
    whole layer, or with a selection the region the worker will send (its `plan`)."""
    if selection is None:
        return 0, 0, layer.get_width(), layer.get_height()
    argv = [worker.python, "-m", "gpt_image_edit", "plan",
            "--layer-size", f"{layer.get_width()}x{layer.get_height()}",
            "--selection-bounds", ",".join(str(value) for value in selection)]
    try:
        output = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env=worker.environment(),
                                timeout=60, check=True).stdout
        box = json.loads(output.decode("utf-8"))
        return int(box["x"]), int(box["y"]), int(box["width"]), int(box["height"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        raise host.HostError("The GPT Image Edit worker could not plan the edit: run "
                             "'python3 install/install.py' again, then restart GIMP.") from None


def export_source(layer, region, path):
    """The region of the layer as an 8-bit PNG (the worker works in 8-bit RGBA)."""
    x, y, width, height = region
    export_drawable(layer, Gimp.ImageBaseType.RGB, (-x, -y), (width, height), path)


def export_selection(image, layer, region, path):
    """The selection over the same pixels as the source PNG, as an 8-bit grayscale PNG."""
    offset_x, offset_y = layer_offsets(layer)
    x, y, width, height = region
    export_drawable(image.get_selection(), Gimp.ImageBaseType.GRAY,
                    (-(offset_x + x), -(offset_y + y)), (width, height), path)


def export_drawable(drawable, base_type, offsets, size, path):
    """Copy a drawable into a throw-away image of `size` at `offsets` and save it as PNG.
    The copy converts indexed, grayscale and high bit depth pixels to 8-bit `base_type`.

    Where the copy does not reach (the selection, for a layer hanging over the canvas
    edge) GIMP fills with the context's background colour: black there means "not
    selected", where GIMP's default white would let the API change those pixels."""
    scratch = Gimp.Image.new(size[0], size[1], base_type)
    Gimp.context_push()
    try:
        Gimp.context_set_background(Gegl.Color.new("black"))
        scratch.undo_disable()
        copy = Gimp.Layer.new_from_drawable(drawable, scratch)
        scratch.insert_layer(copy, None, 0)
        copy.set_offsets(*offsets)
        copy.resize_to_image_size()
        if not save_png(scratch, path):
            raise host.HostError("GPT Image Edit could not write the layer to its temporary "
                                 "folder: check the free disk space and try again.")
    finally:
        Gimp.context_pop()
        scratch.delete()


def save_png(image, path):
    """Gimp.file_save would use GIMP's default compression (9); the file lives for seconds,
    and level 1 halves the export time of a large layer."""
    procedure = Gimp.get_pdb().lookup_procedure("file-png-export")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_property("file", Gio.File.new_for_path(path))
    config.set_property("compression", PNG_COMPRESSION)
    return procedure.run(config).index(0) == Gimp.PDBStatusType.SUCCESS


# ---------------------------------------------------------------------------------------
# Waiting for the worker.

def run_worker(worker, job, interactive):
    try:
        run = host.WorkerRun(worker, job)
    except OSError:
        raise host.HostError(host.NOT_INSTALLED) from None
    with run:
        if interactive:
            return wait_with_dialog(run)
        return wait_with_progress(run)


def progress_text(run):
    return f"{run.last_message} ({int(run.elapsed)} s)"


def wait_with_progress(run):
    """Non-interactive: GIMP's own progress (status bar or console) shows what happens."""
    Gimp.progress_init("GPT Image Edit")

    def tick(current):
        Gimp.progress_set_text(progress_text(current))
        Gimp.progress_pulse()

    try:
        return run.wait(on_tick=tick)
    finally:
        Gimp.progress_end()


def wait_with_dialog(run):
    """Interactive: a small window with a pulsing bar, the worker's message, the elapsed
    seconds and Cancel. The GLib main loop keeps it alive; every GIMP call stays on this
    thread (the host module reads the worker's output on its own thread)."""
    from gi.repository import GimpUi, Gtk

    dialog = GimpUi.Dialog(title="GPT Image Edit: working", role=EDIT_PROCEDURE)
    dialog.add_button("_Cancel", Gtk.ResponseType.CANCEL)
    bar = Gtk.ProgressBar(show_text=True)
    bar.set_text(progress_text(run))
    box = dialog.get_content_area()
    box.set_border_width(12)
    box.pack_start(Gtk.Label(label="Sending the picture to GPT Image Edit..."), False, False, 6)
    box.pack_start(bar, False, False, 6)
    dialog.set_default_size(380, -1)
    loop = GLib.MainLoop()
    cancelled = []

    def on_response(_dialog, _response):
        cancelled.append(True)
        bar.set_text("Cancelling...")
        run.cancel()

    def on_tick():
        if run.poll():
            bar.pulse()
            bar.set_text(progress_text(run))
            return True
        loop.quit()
        return False

    dialog.connect("response", on_response)  # Cancel, or closing the window
    dialog.show_all()
    GLib.timeout_add(POLL_MS, on_tick)
    try:
        loop.run()
    finally:
        dialog.destroy()
    try:
        return run.finish()
    except host.HostError:
        if cancelled:
            raise Cancelled() from None
        raise


# ---------------------------------------------------------------------------------------
# Inserting the results.

def insert_results(image, layer, job, manifest, arguments, with_mask):
    """In one undo group, the results above `layer`: one layer, or a group of variants."""
    placement = manifest["placement"]
    results = sorted(manifest["results"], key=lambda entry: entry["variant"])
    if not results:
        raise host.HostError("The GPT Image Edit worker returned no picture: try again.")
    # Load every result before the first change, so a bad file leaves the image untouched.
    loaded = load_results(image, job, results)
    name = host.layer_name(arguments["prompt"])
    selected = image.get_selected_layers()
    parent, position = layer.get_parent(), image.get_item_position(layer)
    top = loaded[0][1] if len(loaded) == 1 else Gimp.GroupLayer.new(image, name)
    floating = [top] + [result for _, result in loaded if result is not top]
    image.undo_group_start()
    try:
        image.insert_layer(top, parent, position)
        floating.remove(top)
        for index, (entry, result) in enumerate(loaded):
            if result is top:
                result.set_name(name)
            else:
                result.set_name(f"variant {entry['variant']}")
                image.insert_layer(result, top, index)
                floating.remove(result)
            result.set_offsets(placement["x"], placement["y"])
            if with_mask:
                result.add_mask(result.create_mask(Gimp.AddMaskType.SELECTION))
            result.attach_parasite(parasite(manifest, arguments, entry["variant"]))
        image.set_selected_layers(selected)
    except Exception:
        # Leave no half-made result behind: removing the top takes the inserted variants
        # with it; what was never inserted is deleted, or it would leak.
        if top not in floating:
            image.remove_layer(top)
        for item in floating:
            item.delete()
        raise
    finally:
        image.undo_group_end()


def load_results(image, job, results):
    loaded = []
    try:
        for entry in results:
            loaded.append((entry, load_result(image, job.result_path(entry))))
    except host.HostError:
        for _, result in loaded:
            result.delete()
        raise
    return loaded


def load_result(image, path):
    try:
        return Gimp.file_load_layer(Gimp.RunMode.NONINTERACTIVE, image,
                                    Gio.File.new_for_path(path))
    except GLib.Error:
        raise host.HostError("GPT Image Edit could not read a result of the worker: try "
                             "again.") from None


def parasite(manifest, arguments, variant):
    data = host.provenance(manifest, arguments, variant).encode("utf-8")
    return Gimp.Parasite.new(host.PARASITE_NAME, Gimp.PARASITE_PERSISTENT, list(data))


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

    def __init__(self, worker):
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi, Gtk

        GimpUi.init(SETTINGS_PROCEDURE)
        self.Gtk = Gtk
        self.worker = worker
        self.check = None  # the running connection test, if any
        self.stored = stored = worker_settings(worker)
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
        for row, (label, widget) in enumerate(rows):
            grid.attach(Gtk.Label(label=label, xalign=0), 0, row, 1, 1)
            grid.attach(widget, 1, row, 1, 1)
        grid.attach(test, 1, len(rows), 1, 1)
        grid.attach(self.status, 0, len(rows) + 1, 2, 1)
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
                worker_settings(self.worker, self.changes())
        finally:
            if self.check is not None:  # closed while testing: stop the test, not GIMP
                self.check.stop()
                self.check = None
            self.dialog.destroy()
        return saved

    def on_test(self, button):
        """Run the worker's `check` without freezing the dialog; show its sentence."""
        try:
            check = ConnectionCheck(self.worker, self.changes(),
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


class ConnectionCheck:
    """The worker's `check` run with what the dialog holds. A typed key travels on the
    worker's standard input, never on its command line or in its environment, where other
    processes could read it."""

    def __init__(self, worker, changes, default_base_url):
        env = worker.environment()
        env["GPT_IMAGE_EDIT_BASE_URL"] = changes["base_url"] or default_base_url
        env["GPT_IMAGE_EDIT_TIMEOUT"] = str(min(changes["timeout"], CHECK_TIMEOUT))
        typed_key = changes.get("api_key") or ""
        try:
            self.process = subprocess.Popen(
                [worker.python, "-m", "gpt_image_edit", "check", "--key-from-stdin"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=env)
        except OSError:
            raise host.HostError(host.NOT_INSTALLED) from None
        self.process.stdin.write((typed_key + "\n").encode("utf-8"))
        self.process.stdin.close()

    def running(self):
        return self.process.poll() is None

    def stop(self):
        if self.running():
            self.process.kill()
        self._collect()

    def _collect(self):
        """The worker's output, once it has ended. (communicate() would flush the standard
        input this class already closed, and fail.)"""
        out, err = self.process.stdout.read(), self.process.stderr.read()
        self.process.stdout.close()
        self.process.stderr.close()
        self.process.wait()
        return out, err

    def sentence(self):
        """The worker's last line: its answer on success, its sentence on failure."""
        out, err = self._collect()
        lines = (out or err).decode("utf-8", "replace").strip().splitlines()
        if lines:
            return lines[-1]
        return f"The connection test gave no answer (exit code {self.process.returncode})."


# ---------------------------------------------------------------------------------------
# Registration.

class GptImageEdit(Gimp.PlugIn):
    def do_query_procedures(self):
        # The dialogs' Help opens the manual the installer puts beside this file
        # (help/en/gimp-help.xml maps each procedure's help id to docs/manual.html).
        help_folder = Gio.File.new_for_path(os.path.join(ENTRY_DIR, "help"))
        self.set_help_domain(HELP_DOMAIN, help_folder)
        return [EDIT_PROCEDURE, SETTINGS_PROCEDURE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        if name == EDIT_PROCEDURE:
            return create_edit_procedure(self, name)
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
                                  quality_choice(), "high", flags)
    procedure.add_int_argument("variants", "_Variants",
                               "How many results (more than one gives a layer group)",
                               1, 10, 1, flags)
    procedure.add_boolean_argument("use-selection", "_Use selection",
                                   "Edit only the selected area, when there is a selection",
                                   True, flags)
    return procedure


def quality_choice():
    choice = Gimp.Choice.new()
    for index, (nick, label) in enumerate(QUALITIES):
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


Gimp.main(GptImageEdit.__gtype__, sys.argv)
