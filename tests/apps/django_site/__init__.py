"""A minimal Django project for tests/contrib/test_django.py: settings, urls, views.

Loaded in the test process with DJANGO_SETTINGS_MODULE=tests.apps.django_site.settings
and served through Django's own WSGI handler, wrapped by graywsgi.contrib.django.wrap.
"""
