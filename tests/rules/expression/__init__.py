"""Tests of graywsgi.rules.expression: one file per module, named for it."""
