#!/bin/bash
# Builds GIMP 2.10's Python-Fu inside the bullseye root (run by tests/debian_root.py as
# root through bwrap), as ../shared/reference/gimp-2.10-python-fu.md describes:
# PyGObject 2.28.7, pygimp from GIMP 2.10.34's plug-ins/pygimp, pycairo 1.18.2, PyGTK 2.24
# and gimpui/gimpthumb. The source tarballs are at $SOURCES (checked by the caller).
set -euxo pipefail
SOURCES=${SOURCES:-/tmp/sources}
BUILD=$(mktemp -d)
PYDIR=/usr/lib/python2.7/dist-packages
GIMPLIB=/usr/lib/gimp/2.0
export PYTHON=/usr/bin/python2.7 am_cv_python_pythondir=$PYDIR am_cv_python_pyexecdir=$PYDIR
cd "$BUILD"

# PyGObject 2.28.7 (autogen.sh wants automake 1.10/1.11; autoreconf does the same job).
tar xJf "$SOURCES/pygobject-2.28.7.tar.xz"
(cd pygobject-2.28.7 && autoreconf -fi && ./configure --prefix=/usr --disable-introspection \
  --disable-docs && make -j"$(nproc)" && make install)
python2 -c 'import pygtk; pygtk.require("2.0"); import gobject, glib, gio'

# pycairo 1.18.2, for PyGTK and gimpui.
tar xzf "$SOURCES/pycairo-1.18.2.tar.gz"
(cd pycairo-1.18.2 && python2 setup.py install --prefix=/usr --install-layout=deb)

# PyGTK 2.24: pango >= 1.44 no longer has PangoFont's find_shaper virtual.
tar xJf "$SOURCES/pygtk-2.24.0.tar.xz"
cd pygtk-2.24.0
python2 - <<'PY'
import re
defs = open("pango.defs").read()
defs, count = re.subn(r'\(define-virtual find_shaper\n  \(of-object "PangoFont"\).*?\n\)\n',
                      "", defs, flags=re.S)
assert count == 1, "find_shaper not found in pango.defs"
open("pango.defs", "w").write(defs)
PY
ACLOCAL="aclocal -I m4" autoreconf -fi -I m4
./configure --prefix=/usr --disable-docs --disable-numpy
make -j"$(nproc)" && make install
cd "$BUILD"
python2 -c 'import pygtk; pygtk.require("2.0"); import cairo, pango, gtk.keysyms'

# pygimp, compiled without GIMP's configure.
tar xjf "$SOURCES/gimp_2.10.34.orig.tar.bz2" gimp-2.10.34/plug-ins/pygimp
cd gimp-2.10.34/plug-ins/pygimp
printf '#define GETTEXT_PACKAGE "gimp20"\n#define HAVE_BIND_TEXTDOMAIN_CODESET 1\n' > config.h
CFLAGS="-O2 -fPIC -fno-strict-aliasing -DHAVE_CONFIG_H -I. -I/usr/include/python2.7 \
  $(pkg-config --cflags gimpui-2.0 gimpthumb-2.0 pygobject-2.0 pygtk-2.0 pycairo gegl-0.4)"
LIBS="$(pkg-config --libs gimpui-2.0 gimp-2.0 gimpthumb-2.0 gegl-0.4 gobject-2.0 gtk+-2.0)"
module() {  # module NAME SOURCES...: one Python extension; never -lpython2.7 (static python)
  local name=$1; shift
  # shellcheck disable=SC2086
  gcc -shared $CFLAGS -o "$name.so" "$@" $LIBS
  if ldd -r "$name.so" 2>&1 | grep 'undefined symbol' | grep -v 'undefined symbol: _\?Py'; then
    echo "$name.so has undefined symbols" >&2; exit 1
  fi
}
module gimp gimpmodule.c pygimp-item.c pygimp-display.c pygimp-drawable.c pygimp-image.c \
  pygimp-parasite.c pygimp-pdb.c pygimp-tile.c pygimp-vectors.c
module _gimpenums gimpenumsmodule.c
module gimpcolor gimpcolormodule.c pygimp-colors.c
module _gimpui gimpuimodule.c gimpui.c
module gimpthumb gimpthumbmodule.c gimpthumb.c

install -d "$GIMPLIB/python" "$GIMPLIB/environ" "$GIMPLIB/interpreters" \
  "$GIMPLIB/plug-ins/python-eval"
install -m 644 gimp.so _gimpenums.so gimpcolor.so _gimpui.so gimpthumb.so gimpfu.py \
  gimpenums.py gimpplugin.py gimpshelf.py gimpui.py pygimp-logo.png "$GIMPLIB/python/"
python2 -m compileall -q "$GIMPLIB/python"
echo "PYTHONPATH=$GIMPLIB/python" > "$GIMPLIB/environ/pygimp.env"
printf 'python=/usr/bin/python2\npython2=/usr/bin/python2\n/usr/bin/python=/usr/bin/python2\n:Python:E::py::python2:\n' \
  > "$GIMPLIB/interpreters/pygimp.interp"
install -m 755 plug-ins/python-eval.py "$GIMPLIB/plug-ins/python-eval/python-eval.py"
PYTHONPATH=$GIMPLIB/python python2 -c 'import gimpfu, gimpcolor, gimpshelf'
cd / && rm -rf "$BUILD"
