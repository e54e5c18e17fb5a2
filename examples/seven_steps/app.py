"""The seven-step walkthrough's service: stable and canary checkout handlers
behind Extraction, the Router (with a guard and the plan in rules.yaml) and
the admin app at /_gray. See docs/seven-steps.md.

    python examples/seven_steps/app.py --port 8000 --state /tmp/shop-state.json

The admin token comes from GRAYWSGI_ADMIN_TOKEN. While the file
``<state>.canary-fails`` exists the canary answers 500 (to watch the breaker
take it back).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing as t
from pathlib import Path

from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server

from graywsgi import AdminApp, Extraction, Router, current
from graywsgi.core.breaker import BreakerPolicy
from graywsgi.layers.guard import Guard
from graywsgi.state.rollout_state import FileStateStore

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HERE = Path(__file__).resolve().parent


def _answer(release: str, status: int, start_response: StartResponse) -> list[bytes]:
    body = json.dumps({"release": release, "route": current.route, "step_reason": current.route_reason}).encode()
    start_response(f"{status} X", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def stable(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
    return _answer("1.4.2", 200, start_response)


def create_app(state_path: str, token: str | None) -> WSGIApplication:
    fail_flag = state_path + ".canary-fails"

    def canary(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return _answer("1.5.0", 500 if os.path.exists(fail_flag) else 200, start_response)

    guard = Guard(
        policy=BreakerPolicy(min_requests=20, error_rate=0.35, cooldown=30),
        state=FileStateStore(state_path),
    )
    router = Router(stable, str(HERE / "rules.yaml"), apps={"canary": canary}, guard=guard)
    admin = AdminApp(router, token=token)
    return DispatcherMiddleware(Extraction(router), {"/_gray": admin})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--state", required=True, help="the shared state file")
    args = parser.parse_args()
    app = create_app(args.state, os.environ.get("GRAYWSGI_ADMIN_TOKEN"))
    server = make_server("127.0.0.1", args.port, app, threaded=True)
    print(f"serving http://127.0.0.1:{server.port}/checkout (admin: /_gray/)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
