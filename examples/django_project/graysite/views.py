"""Views that read the gray context: ``graywsgi.current`` or ``request.META``."""

from __future__ import annotations

import hashlib
import os

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from graywsgi import current
from graywsgi.contrib.django import routes_only


def index(request: HttpRequest) -> HttpResponse:
    return JsonResponse(
        {
            "pid": os.getpid(),
            "route": current.route,
            "served_by": "canary" if current.route == "canary" else "stable",
            "reason": current.route_reason,
            "rules_version": current.rules_version,
            "gray_id": current.gray_id,
            "trust": current.sources.get("gray_id"),
        }
    )


@csrf_exempt
@require_POST
def echo(request: HttpRequest) -> HttpResponse:
    body = request.body
    context = request.META["graywsgi.context"]  # the same object as graywsgi.current
    return JsonResponse(
        {
            "pid": os.getpid(),
            "route": context.route,
            "length": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "content_type": request.content_type,
        }
    )


def page(request: HttpRequest) -> HttpResponse:
    return render(request, "page.html")


@routes_only("canary")
def new_checkout(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"checkout": "new", "route": current.route})
