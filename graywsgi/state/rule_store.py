"""
Rule stores
===========

A store holds the rule set in force and hands it to
:class:`~graywsgi.layers.router.Router` once per request, so a request sees one
rule set from start to end, whatever happens meanwhile.

- :class:`MemoryStore` -- one process; :meth:`MemoryStore.update` swaps in a
  new rule set.
- :class:`FileStore` -- every gunicorn worker on a host reads the same file.
  On the request path, at most once per ``check_interval`` (default 1 s), a
  worker ``stat()``\\ s the file; when its modification time, size or inode
  changed, it loads, checks and compiles the new content and swaps it in
  whole. No thread is started: nothing runs between requests, and a worker
  that is idle does no work.

A new rule set is swapped in only when it is valid. When the file is broken,
the last good rule set stays in force and the store logs one clear error (on
the ``graywsgi.store`` logger) for that version of the file -- not one per
request. The first load happens when the store is built: a broken file then
stops the start, with the file, line and reason.

Write rule files atomically -- to a temporary file in the same directory,
then ``os.replace()`` -- so no worker ever reads half a file. (A worker that
does read a half-written file only logs an error and keeps the last good
rules; the complete file is picked up on the next check.)
"""

from __future__ import annotations

import logging
import os
import time
import typing as t

from graywsgi.state.polling import Throttle
from graywsgi.rules.files import ConfigFileError, load_rules
from graywsgi.errors import ConfigurationError
from graywsgi.rules.routing import CompiledRules
from graywsgi.rules.model import RuleSet

__all__ = ["RuleStore", "MemoryStore", "FileStore", "as_store"]

logger = logging.getLogger("graywsgi.store")


class RuleStore:
    """Base class: where the rule set in force comes from."""

    def current(self) -> CompiledRules:
        """The rule set in force. Cheap; called once per request."""
        raise NotImplementedError


def _compile(rules: RuleSet | CompiledRules) -> CompiledRules:
    return rules if isinstance(rules, CompiledRules) else CompiledRules(rules)


class MemoryStore(RuleStore):
    """A rule set held in memory, for one process.

    >>> from graywsgi.rules.model import Cluster, RuleSet
    >>> store = MemoryStore(RuleSet(clusters={"stable": Cluster()}, id="v1"))
    >>> store.current().version_id
    'v1'

    :param rules: the initial rule set.
    """

    def __init__(self, rules: RuleSet | CompiledRules) -> None:
        self._rules = _compile(rules)

    def current(self) -> CompiledRules:
        return self._rules

    def update(self, rules: RuleSet | CompiledRules) -> CompiledRules:
        """Check and swap in a new rule set; on error the old one stays.

        :raises ConfigurationError: if the new rule set is invalid.
        """
        compiled = _compile(rules)
        self._rules = compiled
        logger.info("graywsgi rules %s in force (memory)", compiled.version_id)
        return compiled


class FileStore(RuleStore):
    """A rule file, re-read when it changes, checked at most every interval.

    :param path: the rule file (``.yaml``, ``.yml``, ``.json``, ``.toml``).
    :param check_interval: seconds between ``stat()`` calls (default 1).
    :param clock: a monotonic clock (injectable for tests).
    :raises ConfigFileError: if the file is missing or invalid at start.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        check_interval: float = 1.0,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        self._throttle = Throttle(check_interval, clock)
        self.path = os.fspath(path)
        self.check_interval = self._throttle.interval
        self._signature = self._stat()
        self._rules = load_rules(self.path)
        self._failed_signature: tuple[int, int, int] | None = None
        self._throttle.postpone()
        logger.info("graywsgi rules %s in force (file %s)", self._rules.version_id, self.path)

    def current(self) -> CompiledRules:
        self._throttle.maybe(self._reload_if_changed)
        return self._rules

    def reload(self) -> CompiledRules:
        """Check the file now, whatever the interval; return the rules in force."""
        self._throttle.now(self._reload_if_changed)
        return self._rules

    def _stat(self) -> tuple[int, int, int]:
        try:
            stat = os.stat(self.path)
        except OSError as exc:
            raise ConfigFileError(self.path, [(None, (), f"cannot read the file: {exc.strerror or exc}")]) from None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _reload_if_changed(self) -> None:
        try:
            signature = self._stat()
            if signature == self._signature:
                return
            rules = load_rules(self.path)
        except ConfigurationError as exc:
            key = self._signature_or_none()
            if key != self._failed_signature:
                self._failed_signature = key
                logger.error(
                    "graywsgi rules NOT reloaded, keeping %s in force: %s",
                    self._rules.version_id,
                    exc,
                )
            return
        except Exception:  # never let a reload break a request
            logger.exception("graywsgi rules reload failed; keeping %s in force", self._rules.version_id)
            return
        self._signature = signature
        self._failed_signature = None
        previous = self._rules.version_id
        self._rules = rules
        logger.info("graywsgi rules %s in force (was %s; file %s)", rules.version_id, previous, self.path)

    def _signature_or_none(self) -> tuple[int, int, int] | None:
        try:
            return self._stat()
        except ConfigurationError:
            return None


def as_store(rules: RuleStore | RuleSet | CompiledRules | str | os.PathLike[str]) -> RuleStore:
    """Turn what a user passes as ``rules`` into a store."""
    if isinstance(rules, RuleStore):
        return rules
    if isinstance(rules, (RuleSet, CompiledRules)):
        return MemoryStore(rules)
    if isinstance(rules, (str, os.PathLike)):
        return FileStore(rules)
    raise ConfigurationError(f"rules must be a RuleSet, a RuleStore or a file path, got {type(rules).__name__}")
