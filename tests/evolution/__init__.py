"""Tests of graywsgi.evolution: one file per module, named for it."""
