# C types for graywsgi/metrics/step.py when Cython compiles it (see graywsgi/speedups.py).

cimport cython

from graywsgi cimport _capi
from graywsgi.layers.pipeline cimport Exchange, TimingStep


cdef frozenset _METHODS
cdef dict _STATUS_CLASSES
cdef frozenset _ERROR_REASONS
cdef Py_ssize_t _ROUTE, _VERSION, _LEVEL
cdef object _SOCKET
cdef object _FILENO

cpdef str status_class(status, bint raised)
cpdef str method_tag(dict environ)
cpdef send_datagram(udp, bytes payload)
cpdef bytes timed_datagram(bytes head, double milliseconds, bytes tail)


cdef class MetricsStep(TimingStep):
    cdef public object metrics
    cdef public object sink
    cdef public object fork_generation
    cdef public dict datagrams
    cdef public object health
    cdef public Py_ssize_t max_udp_size
    cdef public double trace_sample_rate
    cdef public object sampler

    @cython.locals(now=cython.double, elapsed_ms=cython.double, environ=dict, sampled=cython.bint,
                   usual=cython.bint, key=tuple)
    cpdef finish(self, Exchange exchange, bint raised)
    cpdef datagram(self, tuple key)
    cpdef send(self, bytes payload, long lines)
