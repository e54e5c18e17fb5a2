"""Tests of graywsgi.core: one file per module, named for it."""
