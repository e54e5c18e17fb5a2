# C types for graywsgi/state/rule_store.py when Cython compiles it (see graywsgi/speedups.py).
# Only the in-memory store is typed: the others are Python subclasses.

cdef class RuleStore:
    cpdef current(self)


cdef class MemoryStore(RuleStore):
    cdef public object _rules
