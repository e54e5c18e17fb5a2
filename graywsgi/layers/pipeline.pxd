# C types for graywsgi/layers/pipeline.py when Cython compiles it (see graywsgi/speedups.py).

cimport cython

from graywsgi cimport _capi
from graywsgi.layers.scope cimport RequestScope
from graywsgi.layers.identifiers cimport IdentifierReader


cdef class Exchange(RequestScope):
    cdef public Pipeline pipeline
    cdef public object environ
    cdef public bint finishing
    cdef public double started
    cdef public object events
    cdef public object route
    cdef public object admission
    cdef public double guarded_at
    cdef public object original
    cdef public object rules
    cdef public object decision

    cpdef restart(self)


@cython.locals(exchange=Exchange)
cdef Exchange _new_exchange(Pipeline pipeline, start_response)


cdef class TimingStep:
    cpdef begin(self, Exchange exchange, dict environ)
    cpdef finish(self, Exchange exchange, bint raised)


cdef class DecisionStep:
    cpdef route(self, dict environ, context, Exchange exchange)
    cpdef retry(self, dict environ, Exchange exchange, iterable)
    cpdef finish(self, Exchange exchange, bint raised)


cdef class Pipeline:
    cdef object __weakref__
    cdef public object _app
    cdef public object _step
    cdef public bint _fused
    cdef public object _adopters
    cdef public TimingStep _metrics
    cdef public IdentifierReader _extraction
    cdef public IdentifierReader _implicit
    cdef public DecisionStep _decision
    cdef public Pipeline _innermost

    # cdef, not cpdef: private, never overridden, and called on instances of
    # Python subclasses (Extraction, Router, ...), for which a cpdef method
    # would first look for an override in the instance's and type's dicts.
    @cython.locals(exchange=Exchange, scope=RequestScope, owner=cython.bint)
    cdef _call(self, dict environ, start_response)
    cdef _answer(self, Exchange exchange, bint owner, answer, dict environ)
    cdef _end_steps(self, Exchange exchange, bint raised)
