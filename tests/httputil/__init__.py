"""Tests of graywsgi.httputil: one file per module, named for it."""
