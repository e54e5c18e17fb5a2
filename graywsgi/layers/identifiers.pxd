# C types for graywsgi/layers/identifiers.py when Cython compiles it (see graywsgi/speedups.py).

cimport cython

from graywsgi cimport _capi
from graywsgi.layers.extraction_breaker cimport ExtractionBreaker


cpdef bint valid_traceparent(str value) except -1

cpdef str trimmed(str raw)

cpdef bint plain_ascii(str value) except -1


cdef Py_ssize_t _REQUEST_ID, _LEVEL, _DROPPED, _SOURCES_SLOT, _GRAY_ID_SLOT, _GRAY_KEY_SLOT
cdef Py_ssize_t _API_VERSION_SLOT, _TRACE_SLOT
cdef long _GRAY_ID_BIT, _API_VERSION_BIT, _TRACE_BIT, _GENERATED_ID
cdef list _TEMPLATE
cdef tuple _TEXT_KEYS, _TEXT_SLOTS
cdef list _UNTRUSTED_SOURCES


cdef class IdentifierReader:
    cdef public long required_bits
    cdef public Py_ssize_t max_length
    cdef public object fallback_after
    cdef public tuple resolvers
    cdef public ExtractionBreaker breaker
    cdef public bint refuse_when_open
    cdef public object query_fallback
    cdef public object trust
    cdef public bint strict_identifiers

    cpdef context(self, dict environ)
    @cython.locals(breaker=ExtractionBreaker)
    cpdef read(self, dict environ)
    @cython.locals(mask=cython.long, failed=cython.long, bit=cython.long, slot=cython.Py_ssize_t, value=str,
                   plain=cython.bint, gray_value=str, index=cython.Py_ssize_t)
    cpdef long parse(self, dict environ, verdict, list slots) except? -1
    @cython.locals(mask=cython.long)
    cpdef finish(self, list slots, long failed, resolver_failures, verdict, resolved)
