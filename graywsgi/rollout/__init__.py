"""The operator's tools around a rollout: the admin app (status, roll back,
resume, advance) and the rollback checklist.
"""
