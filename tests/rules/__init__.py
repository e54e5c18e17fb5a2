"""Tests of graywsgi.rules: one file per module, named for it."""
