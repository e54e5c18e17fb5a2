# C types for graywsgi/state/rollout_state.py when Cython compiles it (see graywsgi/speedups.py).
# Only the in-memory store is typed: the others are Python subclasses.

cdef class StateStore:
    cpdef current(self)


cdef class MemoryStateStore(StateStore):
    cdef public object _state
    cdef public object _lock
