# C types for graywsgi/layers/guard.py when Cython compiles it (see graywsgi/speedups.py).

cimport cython

from graywsgi cimport _capi

from graywsgi.core.breaker cimport RouteBreaker
from graywsgi.state.rollout_state cimport StateStore
from graywsgi.core.window cimport LatencyWindow, SlidingWindow


cdef object _MONOTONIC


cdef class Guard:
    cdef object _policy
    cdef public double _slow_call_seconds
    cdef public tuple _recent
    cdef public StateStore state
    cdef tuple _seen
    cdef public bint refuse_when_open
    cdef public bint retry_on_stable
    cdef public object is_error
    cdef public object window_factory
    cdef public object _clock
    cdef public tuple _listeners
    cdef public SlidingWindow baseline
    cdef public LatencyWindow baseline_latency
    cdef public dict _latency
    cdef public dict _breakers
    cdef public dict _synced
    cdef public object _killed_seen
    cdef public object _lock

    cpdef RouteBreaker breaker(self, route)
    cpdef admit(self, route)
    cpdef _kill_switch_changed(self, killed, reason)
    cpdef _adopt(self, RouteBreaker breaker, shared)
    cpdef retry_after(self, route)
    @cython.locals(took=cython.double, error=cython.bint, slow=cython.bint, latency=LatencyWindow)
    @cython.locals(breaker=RouteBreaker, recent=tuple)
    cpdef outcome(self, route, admission, double started, status, bint raised)
    cpdef double now(self) except? -1.0
