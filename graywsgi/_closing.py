"""A response iterable that runs a callback once, when the server closes it."""

from __future__ import annotations

import typing as t

__all__ = ["ClosingIterable"]

T = t.TypeVar("T")


class ClosingIterable(t.Generic[T]):
    """Wrap a WSGI response iterable; call ``on_close(arg)`` exactly once on close.

    PEP 3333 servers call ``close()`` after the last chunk, after an error
    while iterating and after a client disconnect, so this is the one place
    where a request is really over. The wrapped iterable's own ``close()``
    runs first, so its cleanup still sees the request's context.
    """

    __slots__ = ("_iterable", "_on_close", "_arg", "_closed")

    def __init__(
        self, iterable: t.Iterable[bytes], on_close: t.Callable[[T], None], arg: T
    ) -> None:
        self._iterable = iterable
        self._on_close = on_close
        self._arg = arg
        self._closed = False

    def __iter__(self) -> t.Iterator[bytes]:
        return iter(self._iterable)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            close = getattr(self._iterable, "close", None)
            if close is not None:
                close()
        finally:
            self._on_close(self._arg)
