"""The project's WSGI application, wrapped in the gray chain.

    gunicorn -c examples/gunicorn.conf.py --pythonpath examples/django_project graysite.wsgi
"""

import os

from django.core.wsgi import get_wsgi_application

from graywsgi.contrib.django import wrap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "graysite.settings")

application = wrap(get_wsgi_application())
