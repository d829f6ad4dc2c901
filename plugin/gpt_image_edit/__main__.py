import logging
import os
import sys

from .cli import main

code = main()
# A host waits for the worker's end before it reads the manifest: the interpreter's own
# teardown (freeing a 24 MP edit's pictures, modules, threads: a few hundredths of a second)
# is skipped. Every file is written and closed by now; what is buffered is flushed here.
logging.shutdown()
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except (OSError, ValueError):
        pass  # a reader that went away: nothing left to tell it
os._exit(code)
