"""Tests of graywsgi.rollout: one file per module, named for it."""
