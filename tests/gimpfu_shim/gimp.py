"""A stand-in for GIMP 2.10's `gimp` module (pygimp), backed by Pillow images.

It implements only what the GIMP 2.10 entry uses, with GIMP 2.10's argument orders, return
shapes and constant values: images with a layer stack (groups included), a selection
channel and an undo log; layers with offsets, pixels, masks and parasites; `pdb` with the
procedures the entry calls. Everything else raises at once, naming the call. A PDB call that
fails in GIMP raises RuntimeError("execution error") as pygimp does.

The module imports without Pillow (the Python 2.7 check imports the entry through it);
Pillow is needed only once pixels are touched. Names starting with `shim_` are for tests.
"""

import os

import gimpenums as E

# What the tests look at.
shim_messages = []
shim_progress = []
shim_calls = []
shim_images = []
shim_installed = {}
shim_menus = {}
shim_help_domains = {}  # name -> URI, as gimp_plugin_help_register got them
shim_main = []
shim_on_progress = []  # callables run on every progress report (a test's "user")
shim_displays = []

_items = {}
_state = {"next_id": 1}
_context = [{"background": (255, 255, 255)}]  # GIMP's default background colour is white
_PROCEDURES = {}

MODES = {E.RGB: ("RGB", "RGBA"), E.GRAY: ("L", "LA")}


def shim_reset():
    for record in (shim_messages, shim_progress, shim_calls, shim_images, shim_main,
                   shim_displays):
        del record[:]
    del shim_on_progress[:]
    shim_installed.clear()
    shim_menus.clear()
    shim_help_domains.clear()
    _items.clear()
    del _context[1:]
    _context[0] = {"background": (255, 255, 255)}


class ShimNotImplemented(NotImplementedError):
    pass


def _not_modelled(what):
    raise ShimNotImplemented("gimpfu shim: %s is not implemented" % what)


def _execution_error():
    return RuntimeError("execution error")


# ---------------------------------------------------------------------------------------
# The gimp module's own functions.

def message(text):
    if not isinstance(text, str):
        raise TypeError("gimp.message() argument must be str, not %s" % type(text).__name__)
    shim_messages.append(text)


def progress_init(label=None):
    shim_progress.append(("init", label))
    _tell_progress()


def progress_update(percentage):
    fraction = float(percentage)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("gimp.progress_update() takes a fraction between 0 and 1")
    shim_progress.append(("update", fraction))
    _tell_progress()


def _tell_progress():
    for listener in list(shim_on_progress):
        listener()


def displays_flush():
    shim_calls.append("gimp.displays_flush")


def install_procedure(name, blurb, help, author, copyright, date, label, imagetypes,
                      plugin_type, params, results):
    shim_installed[name] = {"blurb": blurb, "help": help, "label": label,
                            "imagetypes": imagetypes, "type": plugin_type,
                            "params": list(params), "results": list(results)}


def menu_register(name, menu):
    shim_menus[name] = menu


def domain_register(domain, path=None):
    _not_modelled("gimp.domain_register")


def main(init, quit, query, run):
    """Outside GIMP there is no wire to talk on: record the callbacks gimpfu handed over."""
    shim_main.append({"init": init, "quit": quit, "query": query, "run": run})


def __getattr__(name):  # Python 3.7+: module attributes that do not exist
    raise AttributeError("gimpfu shim: gimp.%s is not implemented" % name)


# ---------------------------------------------------------------------------------------
# Images and items.

class Parasite(object):
    def __init__(self, name, flags, data):
        self.name, self.flags, self.data = name, flags, data


class Image(object):
    """gimp.Image(width, height, type): an image with no layers and an empty selection."""

    def __init__(self, width, height, type=E.RGB, precision=E.PRECISION_U8_GAMMA):
        if type not in MODES:
            _not_modelled("an image of base type %r" % (type,))
        if precision not in (E.PRECISION_U8_GAMMA, E.PRECISION_U8_LINEAR):
            _not_modelled("an image of precision %r" % (precision,))
        self.ID = _register(self)
        self.width, self.height = int(width), int(height)
        self.base_type = type
        self.precision = precision
        self.layers = []  # top first, as in GIMP's Layers dialog
        self.active_layer = None
        self.undo_enabled = True
        self.undo_log = []
        self.undo_depth = 0
        self.deleted = False
        self.name = "Untitled"
        self.selection = Channel(self, "Selection Mask", self.width, self.height)
        self.selection.attached = True
        shim_images.append(self)

    @property
    def linear(self):
        return self.precision == E.PRECISION_U8_LINEAR

    def record(self, change):
        if self.undo_enabled:
            self.undo_log.append(("change", change, self.undo_depth > 0))

    def shim_forget_undo(self):
        del self.undo_log[:]

    def shim_snapshot(self):
        """Everything a user could see of the image, to compare before and after."""
        return {"size": (self.width, self.height),
                "layers": [item.shim_snapshot() for item in self.layers],
                "selection": self.selection.pixels.tobytes()}

    def shim_all_layers(self):
        found = []
        for item in self.layers:
            found.append(item)
            if isinstance(item, GroupLayer):
                found.extend(_descendants(item))
        return found


def _descendants(group):
    found = []
    for child in group.children:
        found.append(child)
        if isinstance(child, GroupLayer):
            found.extend(_descendants(child))
    return found


def _register(thing):
    ident = _state["next_id"]
    _state["next_id"] += 1
    _items[ident] = thing
    return ident


class Item(object):
    def __init__(self, image, name):
        if image.deleted:
            raise _execution_error()
        self.ID = _register(self)
        self.image = image
        self.name = name
        self.parent = None
        self.attached = False
        self.deleted = False
        self.parasites = {}
        self.visible = True
        self.tattoo = self.ID

    def attach_new_parasite(self, name, flags, data):
        """As pygimp 2.10 does it: the data gets a NUL byte appended (size + 1)."""
        self.parasite_attach(Parasite(name, flags, data + "\0"))

    def parasite_attach(self, parasite):
        _check_alive(self)
        for value, what in ((parasite.name, "name"), (parasite.data, "data")):
            if not isinstance(value, str):
                raise TypeError("parasite %s must be str" % what)
        self.parasites[parasite.name] = Parasite(parasite.name, int(parasite.flags),
                                                 parasite.data)
        if self.attached:
            self.image.record("attach parasite %s to %s" % (parasite.name, self.name))

    def parasite_find(self, name):
        return self.parasites.get(name)

    def __repr__(self):
        return "<gimp.%s '%s'>" % (type(self).__name__, self.name)


class Drawable(Item):
    def __init__(self, image, name, pixels):
        Item.__init__(self, image, name)
        self.pixels = pixels
        self.offsets = (0, 0)

    @property
    def width(self):
        return self.pixels.size[0]

    @property
    def height(self):
        return self.pixels.size[1]

    @property
    def has_alpha(self):
        return self.pixels.mode in ("RGBA", "LA")

    @property
    def is_rgb(self):
        return self.pixels.mode in ("RGB", "RGBA")

    def get_pixel_rgn(self, x, y, width, height, dirty=True, shadow=False):
        """A pixel region: the drawable's bytes as stored (bpp of its mode), sliced in the
        drawable's own coordinates. Only direct writes (no shadow buffer) are modelled."""
        _check_alive(self)
        if shadow:
            _not_modelled("a pixel region on the shadow buffer")
        box = (int(x), int(y), int(x) + int(width), int(y) + int(height))
        if box[0] < 0 or box[1] < 0 or box[2] > self.width or box[3] > self.height:
            raise ValueError("pixel region out of the drawable")
        return PixelRgn(self, box, dirty)

    def flush(self):
        _check_alive(self)

    def update(self, x, y, width, height):
        _check_alive(self)


class PixelRgn(object):
    def __init__(self, drawable, box, dirty):
        self.drawable, self.box, self.dirty = drawable, box, dirty

    def _slices(self, key):
        columns, rows = key
        box = (columns.start, rows.start, columns.stop, rows.stop)
        if (box[0] < self.box[0] or box[1] < self.box[1] or box[2] > self.box[2]
                or box[3] > self.box[3]):
            raise IndexError("slice out of the pixel region")
        return box

    def __getitem__(self, key):
        return self.drawable.pixels.crop(self._slices(key)).tobytes()

    def __setitem__(self, key, data):
        from PIL import Image as PILImage

        if not self.dirty or not isinstance(data, bytes):  # pygimp takes a (byte) str
            raise TypeError("wrong pixel region write")
        box = self._slices(key)
        drawable = self.drawable
        part = PILImage.frombytes(drawable.pixels.mode, (box[2] - box[0], box[3] - box[1]),
                                  data)
        drawable.pixels.paste(part, box[:2])
        if drawable.attached:
            drawable.image.record("draw on %s" % drawable.name)


class Channel(Drawable):
    """A channel: 8-bit linear values, as GIMP 2.10 keeps selections and masks."""

    def __init__(self, image, name, width, height, pixels=None):
        if pixels is None:
            pixels = _new_pixels("L", (width, height))
        Drawable.__init__(self, image, name, pixels)


class LayerMask(Channel):
    def __init__(self, layer, pixels):
        Channel.__init__(self, layer.image, layer.name + " mask", 0, 0, pixels)
        self.layer = layer


class Layer(Drawable):
    """gimp.Layer(image, name, width, height, type, opacity, mode): a layer not yet in the
    image, its pixels cleared (transparent or black)."""

    def __init__(self, image, name, width, height, type=E.RGB_IMAGE, opacity=100.0,
                 mode=E.NORMAL_MODE, pixels=None):
        if pixels is None:
            modes = {E.RGB_IMAGE: "RGB", E.RGBA_IMAGE: "RGBA", E.GRAY_IMAGE: "L",
                     E.GRAYA_IMAGE: "LA"}
            if type not in modes:
                _not_modelled("a layer of type %r" % (type,))
            pixels = _new_pixels(modes[type], (width, height))
        Drawable.__init__(self, image, name, pixels)
        self.opacity, self.mode = opacity, mode
        self.mask = None

    def shim_set_pixels(self, pixels):
        """Test set-up: give the layer these pixels (a Pillow image of the layer's mode)."""
        self.pixels = pixels.copy()

    def shim_snapshot(self):
        return {"kind": type(self).__name__, "name": self.name, "offsets": self.offsets,
                "size": (self.width, self.height), "mode": self.pixels.mode,
                "pixels": self.pixels.tobytes(),
                "mask": None if self.mask is None else self.mask.pixels.tobytes(),
                "parasites": sorted((p.name, p.flags, p.data)
                                    for p in self.parasites.values())}


class GroupLayer(Layer):
    def __init__(self, image):
        Layer.__init__(self, image, "Layer Group", 1, 1, E.RGBA_IMAGE)
        self.children = []

    def shim_snapshot(self):
        snapshot = Layer.shim_snapshot(self)
        snapshot["children"] = [child.shim_snapshot() for child in self.children]
        return snapshot


def _new_pixels(mode, size):
    from PIL import Image as PILImage

    return PILImage.new(mode, (int(size[0]), int(size[1])))


# ---------------------------------------------------------------------------------------
# Pixels: conversions GIMP makes when an item moves between images.

def _srgb_lut(to_linear):
    table = []
    for value in range(256):
        c = value / 255.0
        if to_linear:
            out = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
        else:
            out = c * 12.92 if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055
        table.append(int(round(out * 255)))
    return table


def _convert(pixels, base_type, keep_alpha, from_linear, to_linear):
    """Pixels in the dest image's mode; values through the sRGB curve where GIMP (babl)
    converts between linear and perceptual formats."""
    if from_linear != to_linear:
        lut = _srgb_lut(to_linear)
        bands = list(pixels.split())
        colour_bands = len(bands) - (1 if pixels.mode in ("RGBA", "LA") else 0)
        for index in range(colour_bands):
            bands[index] = bands[index].point(lut)
        from PIL import Image as PILImage

        pixels = PILImage.merge(pixels.mode, bands)
    alpha = keep_alpha and pixels.mode in ("RGBA", "LA")
    return pixels.convert(MODES[base_type][1 if alpha else 0])


# ---------------------------------------------------------------------------------------
# The PDB.

class PDB(object):
    def __getattr__(self, name):
        procedure = _PROCEDURES.get(name)
        if procedure is None:
            raise AttributeError("gimpfu shim: pdb.%s is not implemented" % name)

        def call(*args):
            shim_calls.append(name)
            return procedure(*args)

        return call


pdb = PDB()


def procedure(function):
    _PROCEDURES[function.__name__] = function
    return function


def _check_alive(item):
    if item is None or getattr(item, "deleted", True):
        raise TypeError("invalid arguments")  # an ID GIMP no longer knows: calling error


def _check(value, kind):
    _check_alive(value)
    if not isinstance(value, kind):
        raise TypeError("wrong parameter type")


def _check_string(value):
    if not isinstance(value, str):
        raise TypeError("wrong parameter type")


def _siblings(image, item):
    return image.layers if item.parent is None else item.parent.children


@procedure
def gimp_image_new_with_precision(width, height, type, precision):
    return Image(width, height, type, precision)


@procedure
def gimp_image_delete(image):
    _check(image, Image)
    image.deleted = True
    for item in [image.selection] + image.shim_all_layers():
        item.deleted = True
    shim_images.remove(image)
    return None


@procedure
def gimp_image_undo_disable(image):
    _check(image, Image)
    image.undo_enabled = False
    return 1


@procedure
def gimp_image_undo_group_start(image):
    _check(image, Image)
    image.undo_log.append(("group-start",))
    image.undo_depth += 1


@procedure
def gimp_image_undo_group_end(image):
    _check(image, Image)
    if image.undo_depth == 0:
        raise _execution_error()
    image.undo_depth -= 1
    image.undo_log.append(("group-end",))


@procedure
def gimp_image_get_selection(image):
    _check(image, Image)
    return image.selection


@procedure
def gimp_selection_bounds(image):
    """(non_empty, x1, y1, x2, y2): without a selection, the whole image."""
    _check(image, Image)
    box = image.selection.pixels.getbbox()
    if box is None:
        return (0, 0, 0, image.width, image.height)
    return (1,) + tuple(box)


@procedure
def gimp_context_push():
    _context.append(dict(_context[-1]))


@procedure
def gimp_context_pop():
    if len(_context) == 1:
        raise _execution_error()
    _context.pop()


@procedure
def gimp_context_set_background(color):
    if len(color) < 3 or not all(isinstance(c, int) for c in color[:3]):
        raise TypeError("wrong parameter type")
    _context[-1]["background"] = tuple(color[:3])


@procedure
def gimp_item_is_layer(item):
    _check_alive(item)
    return int(isinstance(item, Layer))


@procedure
def gimp_item_is_group(item):
    _check_alive(item)
    return int(isinstance(item, GroupLayer))


@procedure
def gimp_item_is_layer_mask(item):
    _check_alive(item)
    return int(isinstance(item, LayerMask))


@procedure
def gimp_layer_from_mask(mask):
    _check(mask, LayerMask)
    return mask.layer


@procedure
def gimp_drawable_offsets(drawable):
    _check(drawable, Drawable)
    return tuple(drawable.offsets)


@procedure
def gimp_drawable_width(drawable):
    _check(drawable, Drawable)
    return drawable.width


@procedure
def gimp_drawable_height(drawable):
    _check(drawable, Drawable)
    return drawable.height


@procedure
def gimp_item_get_parent(item):
    _check_alive(item)
    return item.parent


@procedure
def gimp_image_get_item_position(image, item):
    _check(image, Image)
    _check(item, Layer)
    if not item.attached or item.image is not image:
        raise _execution_error()
    return _siblings(image, item).index(item)


@procedure
def gimp_item_set_name(item, name):
    _check_alive(item)
    _check_string(name)
    item.name = name
    if item.attached:
        item.image.record("rename %s" % name)


@procedure
def gimp_item_delete(item):
    _check_alive(item)
    if item.attached:  # GIMP deletes only items that are not in an image
        raise _execution_error()
    item.deleted = True


@procedure
def gimp_layer_new_from_drawable(drawable, dest_image):
    """A copy of a layer or channel for dest_image, not yet in it, in its mode."""
    _check(drawable, Drawable)
    _check(dest_image, Image)
    if isinstance(drawable, GroupLayer):
        _not_modelled("pdb.gimp_layer_new_from_drawable of a layer group")
    source_linear = isinstance(drawable, Channel) or drawable.image.linear
    pixels = _convert(drawable.pixels, dest_image.base_type, isinstance(drawable, Layer),
                      source_linear, dest_image.linear)
    copy = Layer(dest_image, drawable.name + " copy", 0, 0, pixels=pixels)
    copy.offsets = tuple(drawable.offsets)
    return copy


@procedure
def gimp_layer_group_new(image):
    _check(image, Image)
    return GroupLayer(image)


@procedure
def gimp_image_insert_layer(image, layer, parent, position):
    _check(image, Image)
    _check(layer, Layer)
    if parent is not None:
        _check(parent, GroupLayer)
    if layer.attached or layer.image is not image:
        raise _execution_error()
    if parent is not None and (not parent.attached or parent.image is not image):
        raise _execution_error()
    position = int(position)
    if position < 0:
        _not_modelled("pdb.gimp_image_insert_layer with position -1 (above the active layer)")
    siblings = image.layers if parent is None else parent.children
    siblings.insert(min(position, len(siblings)), layer)
    layer.parent, layer.attached = parent, True
    if layer.mask is not None:
        layer.mask.attached = True
    image.active_layer = layer  # GIMP makes an inserted layer the active one
    image.record("insert layer %s" % layer.name)


@procedure
def gimp_image_remove_layer(image, layer):
    _check(image, Image)
    _check(layer, Layer)
    if not layer.attached or layer.image is not image:
        raise _execution_error()
    _siblings(image, layer).remove(layer)
    for item in [layer] + (_descendants(layer) if isinstance(layer, GroupLayer) else []):
        item.attached = False
        item.deleted = True
    if image.active_layer not in image.shim_all_layers():
        image.active_layer = image.layers[0] if image.layers else None
    image.record("remove layer %s" % layer.name)


@procedure
def gimp_layer_set_offsets(layer, offx, offy):
    _check(layer, Layer)
    layer.offsets = (int(offx), int(offy))
    if layer.attached:
        layer.image.record("move %s" % layer.name)


@procedure
def gimp_layer_resize_to_image_size(layer):
    """The layer cropped or grown to the canvas. New area: transparent with an alpha
    channel, else the context's background colour (GIMP 2.10's rule)."""
    _check(layer, Layer)
    image = layer.image
    fill = (0,) * len(layer.pixels.getbands())
    if not layer.has_alpha:
        background = _context[-1]["background"]
        fill = background if layer.pixels.mode == "RGB" else (_luminance(background),)
    canvas = _new_pixels(layer.pixels.mode, (image.width, image.height))
    canvas.paste(fill if len(fill) > 1 else fill[0], (0, 0, image.width, image.height))
    canvas.paste(layer.pixels, layer.offsets)
    layer.pixels, layer.offsets = canvas, (0, 0)
    if layer.attached:
        image.record("resize %s" % layer.name)


def _luminance(rgb):
    return int(round(0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]))


@procedure
def gimp_layer_create_mask(layer, mask_type):
    """ADD_SELECTION_MASK (the selection read at the layer's place in the image) and
    ADD_BLACK_MASK."""
    _check(layer, Layer)
    if int(mask_type) == E.ADD_BLACK_MASK:
        return LayerMask(layer, _new_pixels("L", (layer.width, layer.height)))
    if int(mask_type) != E.ADD_SELECTION_MASK:
        _not_modelled("pdb.gimp_layer_create_mask with mask type %r" % (mask_type,))
    x, y = layer.offsets
    selection = layer.image.selection.pixels
    return LayerMask(layer, selection.crop((x, y, x + layer.width, y + layer.height)))


@procedure
def gimp_layer_add_alpha(layer):
    _check(layer, Layer)
    if not layer.has_alpha:
        layer.pixels = layer.pixels.convert({"RGB": "RGBA", "L": "LA"}[layer.pixels.mode])
        if layer.attached:
            layer.image.record("add alpha to %s" % layer.name)


@procedure
def gimp_drawable_has_alpha(drawable):
    _check(drawable, Drawable)
    return drawable.has_alpha


@procedure
def gimp_drawable_is_rgb(drawable):
    _check(drawable, Drawable)
    return drawable.is_rgb


@procedure
def gimp_image_base_type(image):
    _check(image, Image)
    return image.base_type


@procedure
def gimp_image_get_precision(image):
    _check(image, Image)
    return image.precision


@procedure
def gimp_image_get_color_profile(image):
    """(length, bytes) of the image's own profile: the shim's images have none (GIMP's
    built-in sRGB); real GIMP 2.10 checks images with one (tests/test_gimp2_real.py)."""
    _check(image, Image)
    return 0, []


@procedure
def gimp_image_width(image):
    _check(image, Image)
    return image.width


@procedure
def gimp_image_height(image):
    _check(image, Image)
    return image.height


@procedure
def gimp_layer_add_mask(layer, mask):
    _check(layer, Layer)
    _check(mask, LayerMask)
    if layer.mask is not None or mask.layer is not layer or isinstance(layer, GroupLayer):
        raise _execution_error()
    layer.mask = mask
    mask.attached = layer.attached
    if layer.attached:
        layer.image.record("add mask to %s" % layer.name)


@procedure
def gimp_file_load_layer(image, filename):
    """The picture in a file as a new layer for `image`, not yet in it, named after the
    file, converted to the image's mode (with alpha when the file has it)."""
    _check(image, Image)
    _check_string(filename)
    from PIL import Image as PILImage

    try:
        with PILImage.open(filename) as picture:
            picture.load()
            has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
            picture = picture.convert("RGBA" if has_alpha else "RGB")
    except (IOError, OSError, SyntaxError, ValueError):
        raise _execution_error()  # noqa: B904 (importable by Python 2.7)
    pixels = _convert(picture, image.base_type, True, False, image.linear)
    return Layer(image, os.path.basename(filename), 0, 0, pixels=pixels)


@procedure
def file_png_load(filename, raw_filename):
    """A new image holding the PNG as its one layer (as GIMP 2.10's loader does)."""
    _check_string(filename)
    _check_string(raw_filename)
    from PIL import Image as PILImage

    try:
        with PILImage.open(filename) as picture:
            size = picture.size
    except (IOError, OSError, SyntaxError, ValueError):
        raise _execution_error()  # noqa: B904 (importable by Python 2.7)
    image = Image(size[0], size[1])
    layer = gimp_file_load_layer(image, filename)
    gimp_image_insert_layer(image, layer, None, 0)
    image.shim_forget_undo()
    return image


@procedure
def gimp_image_new(width, height, type):
    return Image(width, height, type)


@procedure
def gimp_display_new(image):
    _check(image, Image)
    shim_displays.append(image)


@procedure
def gimp_item_get_tattoo(item):
    _check_alive(item)
    return item.tattoo


@procedure
def gimp_item_is_valid(item):
    return int(item is not None and not getattr(item, "deleted", True))


@procedure
def gimp_image_is_valid(image):
    return int(image is not None and not image.deleted)


@procedure
def gimp_item_set_visible(item, visible):
    _check_alive(item)
    item.visible = bool(visible)
    if item.attached:
        item.image.record("visibility of %s" % item.name)


@procedure
def gimp_layer_set_edit_mask(layer, edit_mask):
    _check(layer, Layer)
    if layer.mask is None:
        raise _execution_error()
    layer.edit_mask = bool(edit_mask)


@procedure
def file_png_save(image, drawable, filename, raw_filename, interlace, compression, bkgd,
                  gama, offs, phys, time):
    """The drawable's own pixels (no mask, no offsets) as a PNG, as GIMP 2.10 writes it."""
    _check(image, Image)
    _check(drawable, Drawable)
    _check_string(filename)
    _check_string(raw_filename)
    if drawable.image is not image or not drawable.attached:
        raise TypeError("invalid arguments")
    if isinstance(drawable, GroupLayer):
        _not_modelled("pdb.file_png_save of a layer group")
    if not 0 <= int(compression) <= 9:
        raise TypeError("invalid arguments")
    try:
        drawable.pixels.save(filename, "PNG", compress_level=int(compression))
    except (IOError, OSError):
        raise _execution_error()  # noqa: B904 (importable by Python 2.7)


@procedure
def gimp_progress_set_text(text):
    _check_string(text)
    shim_progress.append(("text", text))
    _tell_progress()


@procedure
def gimp_plugin_set_pdb_error_handler(handler):
    if handler not in (E.PDB_ERROR_HANDLER_INTERNAL, E.PDB_ERROR_HANDLER_PLUGIN):
        raise TypeError("invalid arguments")


@procedure
def gimp_plugin_help_register(domain_name, domain_uri):
    # GIMP 2.10 takes a help domain only while the plug-in is queried.
    if not any(record["query"] is not None for record in shim_main):
        raise RuntimeError("gimp_plugin_help_register outside query")
    _check_string(domain_name)
    _check_string(domain_uri)
    shim_help_domains[domain_name] = domain_uri


@procedure
def gimp_progress_end():
    shim_progress.append(("end",))


@procedure
def gimp_image_scale(image, new_width, new_height):
    """The image and every layer in it scaled (cubic, GIMP's default interpolation), offsets
    with them; the selection too."""
    _check(image, Image)
    new_width, new_height = int(new_width), int(new_height)
    if new_width < 1 or new_height < 1:
        raise _execution_error()
    from PIL import Image as PILImage

    factor_x, factor_y = new_width / float(image.width), new_height / float(image.height)
    for layer in image.shim_all_layers():
        width = max(1, int(round(layer.width * factor_x)))
        height = max(1, int(round(layer.height * factor_y)))
        layer.pixels = layer.pixels.resize((width, height), PILImage.BICUBIC)
        layer.offsets = (int(round(layer.offsets[0] * factor_x)),
                         int(round(layer.offsets[1] * factor_y)))
    image.selection.pixels = image.selection.pixels.resize((new_width, new_height),
                                                           PILImage.BICUBIC)
    image.width, image.height = new_width, new_height
    image.record("scale image")


@procedure
def gimp_layer_scale(layer, new_width, new_height, local_origin):
    """The layer scaled (cubic); about the image's origin unless local_origin."""
    _check(layer, Layer)
    if isinstance(layer, GroupLayer):
        _not_modelled("pdb.gimp_layer_scale of a layer group")
    if not layer.attached:
        raise _execution_error()  # GIMP scales only layers that are in an image
    from PIL import Image as PILImage

    factor_x = int(new_width) / float(layer.width)
    factor_y = int(new_height) / float(layer.height)
    layer.pixels = layer.pixels.resize((int(new_width), int(new_height)), PILImage.BICUBIC)
    if layer.mask is not None:
        layer.mask.pixels = layer.mask.pixels.resize(layer.pixels.size, PILImage.BICUBIC)
    if not local_origin:
        layer.offsets = (int(round(layer.offsets[0] * factor_x)),
                         int(round(layer.offsets[1] * factor_y)))
    layer.image.record("scale %s" % layer.name)


@procedure
def gimp_image_set_active_layer(image, layer):
    _check(image, Image)
    _check(layer, Layer)
    if not layer.attached or layer.image is not image:
        raise _execution_error()
    image.active_layer = layer
