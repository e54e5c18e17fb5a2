# C types for graywsgi/rules/routing.py when Cython compiles it (see graywsgi/speedups.py).
# Only what requests read is typed; building a rule set stays plain Python.

# A module cimport, so that routing's Python names (RequestFacts, Decision) stay importable.
from graywsgi.rules cimport decision as decision_c


cdef class CompiledRules:
    cdef public object ruleset
    cdef public object version_id
    cdef public object default_cluster
    cdef public object plan
    cdef public dict colors
    cdef public object default_group
    cdef public dict _color_decisions
    cdef public object _no_match
    cdef public list rules
    cdef public dict _exact_hosts
    cdef public dict _wildcard_hosts
    cdef public object _any_host
    cdef public bint _key_is_gray_id
    cdef public dict _recent
    cdef public decision_c.Decider _decider

    cpdef match(self, decision_c.RequestFacts facts)
    cpdef decide(self, decision_c.RequestFacts facts, canary_weight=*, plan_weight=*, rng=*)
