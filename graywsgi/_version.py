"""graywsgi's version, in a module of its own: the package's modules read it
from here, below everything else, and setup.cfg reads it without importing
graywsgi."""

__version__ = "0.1.0"
