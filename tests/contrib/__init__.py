"""Tests of graywsgi.contrib: one file per module, named for it."""
