"""A stand-in for GIMP 2.10's gimpfu: register(), main() and the PF_* parameter types.

register() keeps the real function's signature, checks and record layout; _query() and
_run() turn the record into what GIMP sees (the PDB parameters with run-mode first) and
call the function as gimpfu does in non-interactive mode: image and drawable first, then
the arguments marshalled to their PDB types (PF_TOGGLE and PF_OPTION arrive as integers).
The interactive dialog needs GTK 2 and is not modelled.
"""

import string as _string

import gimp
from gimpenums import *  # noqa: F401,F403 (gimpfu re-exports every GIMP constant)
from gimpenums import (
    PDB_CHANNEL,
    PDB_COLOR,
    PDB_DISPLAY,
    PDB_DRAWABLE,
    PDB_FLOAT,
    PDB_IMAGE,
    PDB_INT8,
    PDB_INT16,
    PDB_INT32,
    PDB_LAYER,
    PDB_REGION,
    PDB_STRING,
    PDB_VECTORS,
    PLUGIN,
    RUN_NONINTERACTIVE,
)

pdb = gimp.pdb


class error(RuntimeError):
    pass


class CancelError(RuntimeError):
    pass


PF_INT8 = PDB_INT8
PF_INT16 = PDB_INT16
PF_INT32 = PDB_INT32
PF_INT = PF_INT32
PF_FLOAT = PDB_FLOAT
PF_STRING = PDB_STRING
PF_VALUE = PF_STRING
PF_COLOR = PDB_COLOR
PF_COLOUR = PF_COLOR
PF_REGION = PDB_REGION
PF_DISPLAY = PDB_DISPLAY
PF_IMAGE = PDB_IMAGE
PF_LAYER = PDB_LAYER
PF_CHANNEL = PDB_CHANNEL
PF_DRAWABLE = PDB_DRAWABLE
PF_VECTORS = PDB_VECTORS

PF_TOGGLE = 1000
PF_BOOL = PF_TOGGLE
PF_SLIDER = 1001
PF_SPINNER = 1002
PF_ADJUSTMENT = PF_SPINNER
PF_FONT = 1003
PF_FILE = 1004
PF_BRUSH = 1005
PF_PATTERN = 1006
PF_GRADIENT = 1007
PF_RADIO = 1008
PF_TEXT = 1009
PF_PALETTE = 1010
PF_FILENAME = 1011
PF_DIRNAME = 1012
PF_OPTION = 1013

_type_mapping = {
    PF_INT8: PDB_INT8, PF_INT16: PDB_INT16, PF_INT32: PDB_INT32, PF_FLOAT: PDB_FLOAT,
    PF_STRING: PDB_STRING, PF_COLOR: PDB_COLOR, PF_REGION: PDB_REGION,
    PF_DISPLAY: PDB_DISPLAY, PF_IMAGE: PDB_IMAGE, PF_LAYER: PDB_LAYER,
    PF_CHANNEL: PDB_CHANNEL, PF_DRAWABLE: PDB_DRAWABLE, PF_VECTORS: PDB_VECTORS,
    PF_TOGGLE: PDB_INT32, PF_SLIDER: PDB_FLOAT, PF_SPINNER: PDB_INT32,
    PF_FONT: PDB_STRING, PF_FILE: PDB_STRING, PF_BRUSH: PDB_STRING, PF_PATTERN: PDB_STRING,
    PF_GRADIENT: PDB_STRING, PF_RADIO: PDB_STRING, PF_TEXT: PDB_STRING,
    PF_PALETTE: PDB_STRING, PF_FILENAME: PDB_STRING, PF_DIRNAME: PDB_STRING,
    PF_OPTION: PDB_INT32,
}

# How a value crosses the PDB on its way to the plug-in's function.
_marshal = {PDB_INT8: int, PDB_INT16: int, PDB_INT32: int, PDB_FLOAT: float, PDB_STRING: str}
_ITEM_TYPES = {PDB_IMAGE: "Image", PDB_LAYER: "Layer", PDB_CHANNEL: "Channel",
               PDB_DRAWABLE: "Drawable"}

_registered_plugins_ = {}


def register(proc_name, blurb, help, author, copyright, date, label, imagetypes, params,
             results, function, menu=None, domain=None, on_query=None, on_run=None):
    """GIMP 2.10's register(): the same checks, the same record."""
    allowed = _string.ascii_letters + _string.digits + "_" + "-"

    def letter_check(text):
        return all(ch in allowed for ch in text)

    if not letter_check(proc_name):
        raise error("procedure name contains illegal characters")
    for ent in params:
        if len(ent) < 4:
            raise error("parameter definition must contain at least 4 elements "
                        "(%s given: %s)" % (len(ent), ent))
        if not isinstance(ent[0], int):
            raise error("parameter types must be integers")
        if not letter_check(ent[1]):
            raise error("parameter name contains illegal characters")
        if ent[0] in (PF_SPINNER, PF_SLIDER, PF_RADIO, PF_OPTION) and len(ent) < 5:
            raise error("parameter %s needs its fifth element (bounds or choices)" % ent[1])
    for ent in results:
        if len(ent) < 3:
            raise error("result definition must contain at least 3 elements "
                        "(%s given: %s)" % (len(ent), ent))
    if not proc_name.startswith(("python-", "python_", "extension-", "extension_",
                                 "plug-in-", "plug_in_", "file-", "file_")):
        proc_name = "python-fu-" + proc_name
    if menu is None and label:
        gimp._not_modelled("register() with the menu path in the label (deprecated form)")
    _registered_plugins_[proc_name] = (blurb, help, author, copyright, date, label,
                                       imagetypes, PLUGIN, params, results, function, menu,
                                       domain, on_query, on_run)


def _query():
    for plugin, record in _registered_plugins_.items():
        (blurb, help, author, copyright, date, label, imagetypes, plugin_type, params,
         results, function, menu, domain, on_query, on_run) = record

        def make_params(entries):
            return [(_type_mapping[x[0]], x[1], x[2].replace("_", "")) for x in entries]

        pdb_params = make_params(params)
        pdb_params.insert(0, (PDB_INT32, "run-mode",
                              "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"))
        gimp.install_procedure(plugin, blurb, help, author, copyright, date, label,
                               imagetypes, plugin_type, pdb_params, make_params(results))
        if menu:
            gimp.menu_register(plugin, menu)
        if on_query:
            on_query()


def _run(proc_name, params):
    """As GIMP 2.10 runs a registered procedure; only the non-interactive mode."""
    run_mode = params[0]
    if run_mode != RUN_NONINTERACTIVE:
        gimp._not_modelled("gimpfu run mode %r (the dialog needs GTK 2)" % (run_mode,))
    record = _registered_plugins_[proc_name]
    declared, function = record[8], record[10]
    if len(params) - 1 != len(declared):
        raise TypeError("wrong number of parameters")
    values = [_across_pdb(ent, value) for ent, value in zip(declared, params[1:])]
    return function(*values)


def _across_pdb(ent, value):
    pdb_type = _type_mapping[ent[0]]
    if pdb_type in _marshal:
        if pdb_type == PDB_STRING and not isinstance(value, str):
            raise TypeError("wrong parameter type")
        return _marshal[pdb_type](value)
    if pdb_type in _ITEM_TYPES:
        if value is not None and not isinstance(value, getattr(gimp, _ITEM_TYPES[pdb_type])):
            raise TypeError("wrong parameter type")
        return value
    gimp._not_modelled("a %r parameter" % (ent[0],))


def main():
    """This should be called after registering the plug-in."""
    gimp.main(None, None, _query, _run)


def fail(msg):
    gimp.message(msg)
    raise error(msg)


def N_(message):
    return message
