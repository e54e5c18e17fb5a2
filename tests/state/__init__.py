"""Tests of graywsgi.state: one file per module, named for it."""
