"""
Framework integrations
======================

:mod:`graywsgi.contrib.flask` (a Flask extension) and
:mod:`graywsgi.contrib.django` (a wrapper for a Django project's WSGI
application) build the same gray chain from the same settings; this package
holds that shared part. Flask reads the settings from ``app.config`` keys with
the prefix ``GRAYWSGI_`` (``GRAYWSGI_PERCENT``); Django from a ``GRAYWSGI``
dict in its settings (``GRAYWSGI = {"PERCENT": 5}``).

- :mod:`graywsgi.contrib.chain`: the chain and how it is built
  (:func:`~graywsgi.contrib.chain.build_chain`,
  :class:`~graywsgi.contrib.chain.GrayChain`,
  :func:`~graywsgi.contrib.chain.chain_of`);
- :mod:`graywsgi.contrib.settings_layers`: every setting, by the layer it
  configures (the settings tables);
- :mod:`graywsgi.contrib.settings`: how settings are read and checked
  (:data:`~graywsgi.contrib.settings.SETTINGS`,
  :data:`~graywsgi.contrib.settings.RESERVED_PREFIXES`,
  :class:`~graywsgi.contrib.settings.SettingsError`).

Each of these names is importable from ``graywsgi.contrib`` itself.
"""

from __future__ import annotations

from graywsgi.contrib.chain import GrayChain, build_chain, chain_of
from graywsgi.contrib.settings import RESERVED_PREFIXES, SETTINGS, SettingsError

__all__ = [
    "GrayChain",
    "SettingsError",
    "SETTINGS",
    "RESERVED_PREFIXES",
    "build_chain",
    "chain_of",
]
