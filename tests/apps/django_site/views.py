"""Views that read the gray context the way a Django project would."""

from __future__ import annotations

import hashlib
import typing as t

from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt

from graywsgi import current
from graywsgi.contrib.django import routes_only


def index(request: HttpRequest) -> HttpResponse:
    context = request.META["graywsgi.context"]
    return JsonResponse(
        {
            "route": current.route,
            "gray_id": current.gray_id,
            "meta_is_current": context is current._get_current_object(),  # type: ignore[attr-defined]
            "rules_version": current.rules_version,
            "reason": current.route_reason,
        }
    )


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    body = request.body
    return JsonResponse(
        {"route": current.route, "length": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    )


def page(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html")


def stream(request: HttpRequest) -> HttpResponse:
    def chunks() -> t.Iterator[str]:
        for n in range(3):
            yield f"{n}:{current.route};"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def boom(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"view failed on {current.route}")


@routes_only("canary")
def canary_only(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"new feature for {current.route}")
