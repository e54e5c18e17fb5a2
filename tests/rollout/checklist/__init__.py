"""Tests of graywsgi.rollout.checklist: one file per module, named for it."""
