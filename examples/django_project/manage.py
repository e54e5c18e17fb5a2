#!/usr/bin/env python
"""Django's command-line utility for the graywsgi example project.

``python manage.py runserver`` serves ``graysite.wsgi.application`` -- the
project wrapped in the gray chain -- through the ``WSGI_APPLICATION`` setting.
"""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graysite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
