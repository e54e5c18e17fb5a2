"""Tests of graywsgi.prevalidation: one file per module, named for it."""
