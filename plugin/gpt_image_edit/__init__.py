"""Edit pictures with the WisGate images API: the worker behind the GIMP plug-ins."""

__version__ = "0.1.0"
