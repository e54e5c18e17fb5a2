"""Tests of graywsgi.cli: one file per module, named for it."""
