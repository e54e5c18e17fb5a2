"""Settings of the test project: no database, no installed apps."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

SECRET_KEY = "graywsgi-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "tests.apps.django_site.urls"
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [HERE / "templates"],
        "OPTIONS": {"context_processors": ["graywsgi.contrib.django.context_processor"]},
    }
]
LOGGING_CONFIG = None  # leave the test run's logging alone

GRAYWSGI = {
    "PERCENT": 15,
    "TRUSTED_NETWORKS": ["127.0.0.1/32"],
}
