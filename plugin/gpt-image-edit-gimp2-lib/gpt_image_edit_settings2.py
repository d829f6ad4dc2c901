# -*- coding: utf-8 -*-
"""GIMP 2.10's settings dialog (PyGTK 2): endpoint, API key, timeout, Test connection.

The worker owns the settings file (its path rules, format and mode 0600): the dialog reads
it with `gpt_image_edit settings` and saves with `settings --update-from-stdin`, the key on
standard input, never on a command line, never a procedure argument, never in GIMP's
stored last values. The key is never shown back. Valid Python 2.7; standard library and
GIMP 2.10's own PyGTK only, imported when the dialog opens.
"""


import gpt_image_edit_host as host

TITLE = "GPT Image Settings"
POLL_MS = 100


class SettingsDialog(object):
    """The dialog; run() shows it and answers True when the settings were saved."""

    def __init__(self, worker, role):
        import pygtk
        pygtk.require("2.0")
        import gimpui
        import gobject
        import gtk

        gimpui.gimp_ui_init()
        self.gtk, self.gobject = gtk, gobject
        self.worker = worker
        self.check = None  # the running connection test, if any
        self.stored = stored = host.worker_settings(worker)
        self.dialog = gimpui.Dialog(TITLE, role, None, 0, None, role,
                                    (gtk.STOCK_CANCEL, gtk.RESPONSE_CANCEL,
                                     gtk.STOCK_SAVE, gtk.RESPONSE_OK))
        self.dialog.set_default_response(gtk.RESPONSE_OK)
        self.endpoint = gtk.Entry()
        self.endpoint.set_width_chars(40)
        self.endpoint.set_text(stored["base_url"] or "")
        self.key = gtk.Entry()
        self.key.set_visibility(False)
        key_hint = gtk.Label("A key is set: type a new one to replace it."
                             if stored["api_key_stored"] else "Paste your WisGate key.")
        key_hint.set_alignment(0.0, 0.5)
        self.timeout = gtk.SpinButton(gtk.Adjustment(5, 5, 3600, 5, 60, 0))
        self.timeout.set_numeric(True)
        self.timeout.set_value(stored["timeout"])
        test = gtk.Button("_Test connection")
        test.connect("clicked", self.on_test)
        # A broken settings file is said here; saving writes a good one.
        self.status = gtk.Label(stored["problem"] or "")
        self.status.set_alignment(0.0, 0.5)
        self.status.set_line_wrap(True)
        self.status.set_width_chars(50)
        table = gtk.Table(6, 2)
        table.set_border_width(12)
        table.set_row_spacings(6)
        table.set_col_spacings(12)
        rows = (("_Endpoint", self.endpoint), ("API _key", self.key), (None, key_hint),
                ("T_imeout (seconds)", self.timeout), (None, test))
        for row, (label, widget) in enumerate(rows):
            if label:
                caption = gtk.Label(label)
                caption.set_use_underline(True)
                caption.set_mnemonic_widget(widget)
                caption.set_alignment(0.0, 0.5)
                table.attach(caption, 0, 1, row, row + 1, gtk.FILL)
            table.attach(widget, 1, 2, row, row + 1)
        table.attach(self.status, 0, 2, len(rows), len(rows) + 1)
        self.dialog.vbox.pack_start(table, True, True, 0)

    def changes(self):
        changes = {"base_url": self.endpoint.get_text().decode("utf-8").strip() or None,
                   "timeout": self.timeout.get_value()}
        key = self.key.get_text().decode("utf-8").strip()
        if key:  # an empty box keeps the stored key
            changes["api_key"] = key
        return changes

    def run(self):
        self.dialog.show_all()
        try:
            saved = self.dialog.run() == self.gtk.RESPONSE_OK
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
            self.status.set_text(error.args[0])
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
            self.status.set_text(check.sentence().encode("utf-8"))
            button.set_sensitive(True)
            return False

        self.gobject.timeout_add(POLL_MS, on_tick)
