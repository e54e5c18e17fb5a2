# C types for graywsgi/core/breaker.py when Cython compiles it (see graywsgi/speedups.py).

from graywsgi.core.window cimport SlidingWindow


cdef class RouteBreaker:
    cdef public object route
    cdef object _policy
    cdef public long long _min_requests
    cdef public object baseline
    cdef public SlidingWindow window
    cdef public tuple _listeners
    cdef public object _clock
    cdef public object _lock
    cdef public object _state
    cdef public double _opened_at
    cdef public bint _held
    cdef public long _probes_issued
    cdef public long _probes_reported

    cpdef retry_after(self)
    cpdef admit(self)
    cpdef record(self, admission, bint error, bint slow)
    cpdef _trip_reason(self, totals)
    cpdef _apply(self, event, reason, double now, trip_totals=*)
    cpdef _announce(self, notice)
