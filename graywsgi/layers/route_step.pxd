# C types for graywsgi/layers/route_step.py when Cython compiles it (see graywsgi/speedups.py).

cimport cython

from graywsgi cimport _capi
from graywsgi.rules.decision cimport request_facts
from graywsgi.layers.guard cimport Guard
from graywsgi.rules.routing cimport CompiledRules
from graywsgi.state.rule_store cimport RuleStore
from graywsgi.layers.pipeline cimport DecisionStep, Exchange


cdef class RouteStep(DecisionStep):
    cdef public object router
    cdef public RuleStore store
    cdef public Guard guard
    cdef public dict apps
    cdef public double proxy_timeout
    cdef public dict proxies
    cdef public object proxies_lock

    @cython.locals(rules=CompiledRules)
    cpdef route(self, dict environ, context, Exchange exchange)
    cpdef record(self, dict environ, context, CompiledRules rules, decision)
    cpdef target(self, CompiledRules rules, route)


cpdef bint retryable(dict environ) except -1
cpdef trusted_weight(dict environ)
