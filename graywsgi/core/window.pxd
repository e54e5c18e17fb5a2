# C types for graywsgi/core/window.py when Cython compiles it (see graywsgi/speedups.py).
# The buckets stay Python lists: tests (and subclasses) may replace them.

cimport cython

from graywsgi cimport _capi


cdef object _MONOTONIC


cdef class SlidingWindow:
    cdef public Py_ssize_t buckets
    cdef public double bucket_seconds
    cdef public object _clock
    cdef cython.pymutex _mutex
    cdef object _guard
    cdef public object _requests
    cdef public object _errors
    cdef public object _slow
    cdef public long long _total_requests
    cdef public long long _total_errors
    cdef public long long _total_slow
    cdef public long long _newest
    cdef public Py_ssize_t _slot

    cpdef record(self, bint error, bint slow)
    @cython.locals(bucket=cython.longlong)
    cpdef object _count(self, bint error, bint slow)
    @cython.locals(bucket=cython.longlong, requests=cython.longlong, errors=cython.longlong, slow_calls=cython.longlong)
    cdef object _count_to_judge(self, bint error, bint slow, long long min_requests)
    cdef tuple _add(self, long long bucket, bint error, bint slow)
    @cython.locals(slot=cython.Py_ssize_t)
    cdef _add_one(self, long long bucket, bint error, bint slow)
    cpdef totals(self)
    cdef _totals(self, long long bucket)
    cpdef reset(self)
    cdef _restart(self, long long bucket)
    cpdef long long _bucket_now(self) except? -1
    @cython.locals(n=cython.longlong, slot=cython.Py_ssize_t)
    cpdef _expire(self, long long bucket)
    cpdef _clear(self)


cdef class LatencyWindow:
    cdef public Py_ssize_t buckets
    cdef public double bucket_seconds
    cdef public object _clock
    cdef cython.pymutex _mutex
    cdef object _guard
    cdef public list _counts
    cdef public list _seconds
    cdef public long long _newest_count
    cdef public double _newest_seconds
    cdef public long long _newest
    cdef public Py_ssize_t _slot

    @cython.locals(bucket=cython.longlong)
    cpdef record(self, double seconds)
    cdef _add(self, long long bucket, double seconds)
    cpdef mean(self)
    cdef tuple _sums(self, long long bucket)
    @cython.locals(n=cython.longlong, slot=cython.Py_ssize_t)
    cpdef _expire(self, long long bucket)
