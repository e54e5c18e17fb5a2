"""A stand-in deployment for the gateway example: answers with its release.

    python examples/gateway/upstream.py --port 8001 --release 1.4.2   # old
    python examples/gateway/upstream.py --port 8002 --release 1.5.0   # new
"""

from __future__ import annotations

import argparse
import json
import sys
import typing as t

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


def create_app(release: str) -> WSGIApplication:
    def app(environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        request = Request(environ)
        body = request.get_data()
        answer = {
            "release": release,
            "path": request.full_path.rstrip("?"),
            "route": request.headers.get("X-Route-To"),
            "gray_id": request.headers.get("X-Gray-ID"),
            "forwarded_for": request.headers.get("X-Forwarded-For"),
            "body_bytes": len(body),
        }
        return Response(json.dumps(answer), mimetype="application/json")(environ, start_response)

    return app


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--release", required=True)
    args = parser.parse_args()
    server = make_server("127.0.0.1", args.port, create_app(args.release), threaded=True)
    print(f"release {args.release} on http://127.0.0.1:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
