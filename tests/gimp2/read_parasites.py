"""The same script in GIMP 2.10 (Python 2, gimpfu) and GIMP 3 (Python 3, gi): opens the XCF
$GIMP_TEST_XCF and writes, to the JSON file $GIMP_TEST_OUT, the gpt-image-edit parasite of
every layer (groups included) as hex bytes with its flags, as a script that reads the
provenance of an edit would see it."""

import binascii
import json
import os

NAME = "gpt-image-edit"


def gimp3_parasites(path):
    from gi.repository import Gimp, Gio

    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(path))
    found = {}

    def walk(layers):
        for layer in layers:
            parasite = layer.get_parasite(NAME)
            if parasite is not None:
                found[layer.get_name()] = (bytes(parasite.get_data()), parasite.get_flags())
            if layer.is_group():
                walk(layer.get_children())

    walk(image.get_layers())
    return found


def gimp2_parasites(path):
    from gimpfu import pdb

    image = pdb.gimp_xcf_load(0, path, path)
    found = {}

    def walk(layers):
        for layer in layers:
            parasite = layer.parasite_find(NAME)
            if parasite is not None:
                found[layer.name.decode("utf-8")] = (parasite.data, parasite.flags)
            if pdb.gimp_item_is_group(layer):
                walk(layer.layers)

    walk(image.layers)
    return found


def main():
    try:
        import gi

        gi.require_version("Gimp", "3.0")
        read = gimp3_parasites
    except (ImportError, ValueError):
        read = gimp2_parasites
    found = read(os.environ["GIMP_TEST_XCF"])
    report = {name: {"hex": binascii.hexlify(data).decode("ascii"), "flags": flags}
              for name, (data, flags) in found.items()}
    with open(os.environ["GIMP_TEST_OUT"], "w") as handle:
        json.dump(report, handle)


main()
