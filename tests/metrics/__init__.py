"""Tests of graywsgi.metrics: one file per module, named for it."""
