# C types for graywsgi/core/window.py when Cython compiles it (see graywsgi/speedups.py).
# The buckets stay Python lists: tests (and subclasses) may replace them.

cimport cython

from graywsgi cimport _capi


cdef class SlidingWindow:
    cdef public Py_ssize_t buckets
    cdef public double bucket_seconds
    cdef public object _clock
    cdef object _guard
    cdef tuple _lock_calls
    cdef public object _requests
    cdef public object _errors
    cdef public object _slow
    cdef public long long _total_requests
    cdef public long long _total_errors
    cdef public long long _total_slow
    cdef public long long _newest
    cdef public Py_ssize_t _slot

    cpdef record(self, bint error, bint slow)
    @cython.locals(bucket=cython.longlong, slot=cython.Py_ssize_t)
    cpdef object _count(self, bint error, bint slow)
    cpdef totals(self)
    cpdef reset(self)
    cpdef long long _bucket_now(self) except? -1
    @cython.locals(n=cython.longlong, slot=cython.Py_ssize_t)
    cpdef _expire(self, long long bucket)
    cpdef _clear(self)


cdef class LatencyWindow:
    cdef public Py_ssize_t buckets
    cdef public double bucket_seconds
    cdef public object _clock
    cdef object _guard
    cdef tuple _lock_calls
    cdef public list _counts
    cdef public list _seconds
    cdef public long long _newest
    cdef public Py_ssize_t _slot

    @cython.locals(bucket=cython.longlong, slot=cython.Py_ssize_t)
    cpdef record(self, double seconds)
    cpdef mean(self)
    @cython.locals(n=cython.longlong, slot=cython.Py_ssize_t)
    cpdef _expire(self, long long bucket)
