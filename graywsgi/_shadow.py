"""What graywsgi's compiled modules see of the ``cython`` module when they
run as plain Python and Cython is not installed (it is needed only to build
them; see :mod:`graywsgi.speedups`). Compiled, ``import cython`` is Cython's
own; as plain Python with Cython installed, it is Cython's pure-Python
shadow, which has the same ``compiled = False``.
"""

#: Whether the module runs compiled: never, where this module is used.
compiled = False


def locals(**types: object) -> object:  # noqa: A001 - the name Cython gives it
    """``@cython.locals(name=type, ...)``: C types when compiled; here, nothing."""

    def keep(function: object) -> object:
        return function

    return keep
