"""The middleware a user stacks, and the steps they run.

:class:`~graywsgi.layers.extraction.Extraction`, :class:`~graywsgi.layers.split.CanarySplit`
and :class:`~graywsgi.layers.router.Router` (with its
:class:`~graywsgi.layers.guard.Guard`) are WSGI middleware; each is a
:class:`~graywsgi.layers.pipeline.Pipeline`, and stacked directly they run as one
(see :mod:`graywsgi.layers.pipeline` for the request path, top to bottom).
:mod:`graywsgi.metrics`, :mod:`graywsgi.prevalidation` and
:mod:`graywsgi.evolution` hold the other layers, each with the parts only it needs.
"""
