"""The core values of a gray release: the request's gray context, the FNV
hash that splits users into buckets, versions and version ranges, the sliding
window of outcomes and the route breaker that reads it.

Nothing here imports a layer, a store or a rule: every other package builds
on these.
"""
