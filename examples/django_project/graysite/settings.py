"""Settings of the graywsgi example project: no database, no apps, one view module.

graywsgi reads the ``GRAYWSGI`` dict below (see graywsgi.contrib for every
setting). Each ``GRAYWSGI_<NAME>`` environment variable overrides ``<NAME>``;
its value is read as JSON when it is JSON (``["10.0.0.0/8"]``, ``15``), else
as a string (a file path).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from graywsgi.speedups import ENVIRONMENT_VARIABLES

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "graywsgi-example-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "graysite.urls"
WSGI_APPLICATION = "graysite.wsgi.application"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "graysite" / "templates"],
        "OPTIONS": {"context_processors": ["graywsgi.contrib.django.context_processor"]},
    }
]


def _from_environment(prefix: str = "GRAYWSGI_") -> dict[str, object]:
    settings: dict[str, object] = {}
    for name, value in os.environ.items():
        # GRAYWSGI_PURE_PYTHON, GRAYWSGI_NO_EXTENSIONS and GRAYWSGI_PROFILE_GUIDED
        # choose graywsgi's compiled or plain Python modules and how they are
        # built: they are not settings.
        if name.startswith(prefix) and name not in ENVIRONMENT_VARIABLES:
            try:
                settings[name[len(prefix):]] = json.loads(value)
            except ValueError:
                settings[name[len(prefix):]] = value
    return settings


GRAYWSGI: dict[str, object] = {
    "RULES": str(BASE_DIR / "rules.yaml"),
    # Requests from this machine count as coming from the gateway, so curl
    # can choose a route; a real service lists its gateways' networks.
    "TRUSTED_NETWORKS": ["127.0.0.1/32", "::1/128"],
    **_from_environment(),
}
