"""Tests of graywsgi.rollout.admin: one file per module, named for it."""
