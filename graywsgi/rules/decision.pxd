# C types for graywsgi/rules/decision.py when Cython compiles it (see graywsgi/speedups.py).

cimport cython

from graywsgi cimport _capi
from graywsgi.core.hashing cimport bucket_of

cdef Py_ssize_t _TRAFFIC_COLOR, _GRAY_KEY


cdef class RequestFacts:
    cdef public object environ
    cdef public object context
    cdef public str host
    cdef public str path
    cdef public object _query
    cdef public object _cookies

    cpdef header(self, name)
    cpdef query_bytes(self, name)
    cpdef query(self, name)
    cpdef cookie(self, name)
    cpdef attribute(self, name)


@cython.locals(facts=RequestFacts)
cpdef RequestFacts request_facts(dict environ, context)


@cython.final
cdef class CompiledRule:
    cdef public object rule
    cdef public object name
    cdef public tuple checks
    cdef public double factor
    cdef public tuple versions
    cdef public tuple backends
    cdef public tuple weights
    cdef public bytes salt
    cdef public bint percent
    cdef public tuple weighted
    cdef public object fallthrough

    cpdef bint matches(self, RequestFacts facts) except -1


@cython.final
cdef class Decider:
    cdef public list rules
    cdef public object index_entry
    cdef public object with_values
    cdef public dict recent
    cdef public Py_ssize_t recent_limit
    cdef public Py_ssize_t recent_key_chars
    cdef public Py_ssize_t recent_candidates
    cdef public dict color_decisions
    cdef public object no_match
    cdef public object key
    cdef public bint key_is_gray_id
    cdef public object fallback_key

    @cython.locals(compiled=CompiledRule)
    cpdef CompiledRule match(self, RequestFacts facts)
    @cython.locals(edge=cython.double, point=cython.double, weight=cython.double, i=cython.Py_ssize_t)
    cpdef decide(self, RequestFacts facts, canary_weight, plan_weight, rng)
    cpdef double point(self, CompiledRule compiled, RequestFacts facts, rng) except? -2.0


cpdef key_of(spec, RequestFacts facts)
cpdef bint version_matches(context, source, exact, version_range) except -1
