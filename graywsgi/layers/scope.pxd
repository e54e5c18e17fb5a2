# C types for graywsgi/layers/scope.py when Cython compiles it (see graywsgi/speedups.py).

from graywsgi cimport _capi


cdef dict _CODES
cdef object _NOT_PARSED
cdef object _END
cdef object _WRITE
cpdef object status_code(status)

cdef object _bind(gray)
cdef int _unbind(token) except -1


cdef class RequestScope:
    cdef public object gray
    cdef public bint raised
    cdef public bint calling
    cdef public object code
    cdef public object start_response
    cdef public bint holding
    cdef public bint committed
    cdef public object line
    cdef public object headers
    cdef public object exc_info
    cdef public object sent
    cdef public object body
    cdef public object first
    cdef object _iterator
    cdef list _callbacks
    cdef bint _closed

    cpdef on_close(self, callback)
    cpdef commit(self)
    cpdef bint settle(self, iterable, failed) except -1
    cpdef abort(self)
    cpdef finish(self, iterable)
    cpdef close(self)
    cpdef bint _needs_close(self) except -1
    cpdef _ended(self, bint raised)
    cpdef _run_callbacks(self, bint raised)


cdef class _Joined:
    cdef public RequestScope scope
    cdef public object iterable
    cdef object _iterator
