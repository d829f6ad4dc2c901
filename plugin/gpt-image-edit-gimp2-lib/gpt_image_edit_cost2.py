# -*- coding: utf-8 -*-
"""GIMP 2.10's spending-limit question (PyGTK 2): the worker's sentence with the estimate
and the limit, Send anyway or Cancel. Valid Python 2.7; GIMP 2.10's own PyGTK only,
imported when the question is asked.
"""

TITLE = "GPT Image Edit: above the spending limit"


def ask_to_send(message, role):
    """True when the retoucher chose Send anyway. Cancel is the default: it costs nothing."""
    import pygtk
    pygtk.require("2.0")
    import gimpui
    import gtk

    gimpui.gimp_ui_init()
    dialog = gimpui.Dialog(TITLE, role + "-cost", None, 0, None, role,
                           (gtk.STOCK_CANCEL, gtk.RESPONSE_CANCEL,
                            "_Send anyway", gtk.RESPONSE_OK))
    dialog.set_default_response(gtk.RESPONSE_CANCEL)
    box = gtk.VBox(False, 12)
    box.set_border_width(12)
    for line in (message, "Send this edit all the same?"):
        label = gtk.Label(line)
        label.set_alignment(0.0, 0.5)
        label.set_line_wrap(True)
        label.set_width_chars(60)
        box.pack_start(label, False, False, 0)
    dialog.vbox.pack_start(box, True, True, 0)
    dialog.show_all()
    try:
        return dialog.run() == gtk.RESPONSE_OK
    finally:
        dialog.destroy()
