"""Tests of graywsgi.layers: one file per module, named for it."""
