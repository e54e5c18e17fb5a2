# C types for graywsgi/layers/extraction_breaker.py when Cython compiles it (see graywsgi/speedups.py).
# Compiled so that the extraction's hot path reads the breaker's state as two C fields.


cdef class ExtractionBreaker:
    cdef public object failure_threshold
    cdef public double slow_call
    cdef public double open_for
    cdef public object _clock
    cdef public object _lock
    cdef public object _state
    cdef public long _consecutive_failures
    cdef public double _opened_at

    cpdef retry_after(self)
    cpdef admit(self)
    cpdef record(self, admission, bint failed, double duration)
    cpdef tuple _apply(self, event)
