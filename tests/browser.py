"""Headless Chromium for the tests, kept off the network.

Two ways to drive it:

- :func:`playwright_page` -- Playwright's Python package driving the
  system Chromium (``executable_path``; Playwright downloads nothing), with
  every request to anything but ``http://127.0.0.1`` aborted and recorded;
- :func:`dump_dom` and :func:`screenshot` -- the ``chromium`` command line.

Either way Chromium runs with background networking, component updates,
sync and the like switched off, with every host name but 127.0.0.1
unresolvable and every non-loopback connection sent to a proxy port on
127.0.0.1 where nothing listens. Only ``http://127.0.0.1:<port>/`` URLs are
accepted.

Where Chromium (or Playwright) is missing, :func:`require_chromium` and
:func:`playwright_page` skip the test -- except under CI (``CI`` set), where
they fail it: CI installs both (see ``.ci/run``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import typing as t
from pathlib import Path

import pytest
from werkzeug.serving import make_server

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication
    from playwright.sync_api import Page

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
LOCAL_PREFIX = "http://127.0.0.1:"
INSTALL_HINT = "apt-get install -y chromium (Debian) and pip install playwright"

#: Flags that keep Chromium from reaching anything but 127.0.0.1.
NO_NETWORK_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--no-pings",
    "--metrics-recording-only",
    (
        "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,"
        "AutofillServerCommunication,CertificateTransparencyComponentUpdater"
    ),
    # Loopback bypasses a proxy implicitly; everything else goes to a closed port.
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def unavailable(reason: str) -> t.NoReturn:
    """Skip the test -- or, under CI, fail it: CI must have the browser."""
    if in_ci():
        pytest.fail(f"{reason}; CI must install it ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{reason} ({INSTALL_HINT}); this test runs in CI")


def find_chromium() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


def require_chromium() -> str:
    found = find_chromium()
    if found is None:
        unavailable(f"no Chromium found (looked for {', '.join(CHROMIUM_CANDIDATES)})")
    return found


def check_local(url: str) -> None:
    if not url.startswith(LOCAL_PREFIX):
        raise ValueError(f"the test browser only visits {LOCAL_PREFIX}<port> URLs, not {url!r}")


def screenshot_dir(fallback: Path) -> Path:
    """Where screenshots go: ``$GRAYWSGI_SCREENSHOTS`` if set, else ``fallback``."""
    chosen = os.environ.get("GRAYWSGI_SCREENSHOTS")
    path = Path(chosen) if chosen else fallback
    path.mkdir(parents=True, exist_ok=True)
    return path


class LiveServer:
    """A WSGI app served on 127.0.0.1 (a free port) from a thread."""

    def __init__(self, app: WSGIApplication) -> None:
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="live-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()


def _run_chromium(chromium: str, extra: t.Sequence[str], url: str, timeout: float) -> str:
    check_local(url)
    with tempfile.TemporaryDirectory(prefix="graywsgi-chromium-") as profile:
        command = [chromium, "--headless", *NO_NETWORK_FLAGS, f"--user-data-dir={profile}", *extra, url]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def dump_dom(url: str, *, chromium: str, timeout: float = 90) -> str:
    """The DOM after the page loaded (redirects and cookies followed)."""
    return _run_chromium(chromium, ["--dump-dom"], url, timeout)


def screenshot(url: str, path: Path, *, chromium: str, size: tuple[int, int] = (1280, 1000),
               timeout: float = 90) -> Path:
    """A PNG of the page at ``url``."""
    _run_chromium(
        chromium, [f"--screenshot={path}", f"--window-size={size[0]},{size[1]}", "--hide-scrollbars"], url, timeout
    )
    if not path.exists():
        raise RuntimeError(f"chromium wrote no screenshot to {path}")
    return path


class Visits:
    """What the browser asked for: local requests, and blocked ones."""

    def __init__(self) -> None:
        self.local: list[str] = []
        self.blocked: list[str] = []
        self.console_errors: list[str] = []


@contextlib.contextmanager
def playwright_page(*, size: tuple[int, int] = (1280, 1000)) -> t.Iterator[tuple[Page, Visits]]:
    """A Playwright page in the system Chromium that can reach 127.0.0.1 only.

    Every request elsewhere is aborted and listed in ``visits.blocked``;
    console errors (a Content-Security-Policy violation, a script error)
    are listed in ``visits.console_errors``.
    """
    chromium = require_chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("the playwright package is not installed")
    visits = Visits()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            headless=True,
            args=list(NO_NETWORK_FLAGS),
        )
        try:
            context = browser.new_context(viewport={"width": size[0], "height": size[1]})

            def gate(route: t.Any) -> None:
                url = route.request.url
                if url.startswith((LOCAL_PREFIX, "data:")):
                    visits.local.append(url)
                    route.continue_()
                else:
                    visits.blocked.append(url)
                    route.abort()

            context.route("**/*", gate)
            page = context.new_page()
            page.on("console", lambda message: visits.console_errors.append(message.text)
                    if message.type == "error" else None)
            page.on("pageerror", lambda error: visits.console_errors.append(str(error)))
            yield page, visits
            context.close()
        finally:
            browser.close()
