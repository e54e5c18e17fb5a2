"""
Pipeline
========

How a stack of graywsgi layers runs: as one WSGI call.

Every layer that takes part in the request path -- :class:`~graywsgi.metrics.layer.Metrics`,
:class:`~graywsgi.layers.extraction.Extraction`, :class:`~graywsgi.layers.split.CanarySplit`
and :class:`~graywsgi.layers.router.Router` -- is a :class:`Pipeline`. Built on its
own, a layer's pipeline runs its own step and then calls the application it
wraps. When it wraps another graywsgi layer *directly*, and that layer's step
comes later in the request path, the outer layer adopts the inner one's steps
when it is built: ``Metrics(Extraction(Router(app, rules, guard=guard)))`` is
one call to one pipeline that runs the three steps in order, with one
``start_response`` wrapper and one response body for the request
(:class:`~graywsgi.layers.scope.RequestScope`), or none at all when nothing waits
for the end of the response. The inner layers still work on their own, and
every option and result is the same as when each layer calls the next.

The request path, in order:

1. **Metrics** -- the clock starts; at the end, one datagram
   (:mod:`graywsgi.metrics.layer`).
2. **Extraction** -- the gray context is read from the request and bound
   (:mod:`graywsgi.layers.extraction`); a decision step without an Extraction
   before it reads the context with Extraction's defaults when none was
   bound by a layer further out.
3. **Decision** -- CanarySplit or Router chooses the route; the Router's
   Guard admits it, or reroutes it, and records its outcome at the end
   (:mod:`graywsgi.layers.router`, :mod:`graywsgi.layers.guard`).
4. **The application**, with the context bound; the response's body is
   iterated and closed with it bound again.

A layer whose application is not a graywsgi layer, or a graywsgi layer whose
step does not come later (two Extractions, a Metrics inside an Extraction),
calls it as any WSGI application. Middleware of your own between two graywsgi
layers therefore splits the stack into two pipelines; the inner one joins the
outer one's response (``environ["graywsgi.scope"]``), so its work at the end
of the response still runs when the server closes it.

Setting a layer's ``app`` after it was built fuses it, and every pipeline that
adopted its steps, anew.
"""

from __future__ import annotations

import typing as t
import weakref

from graywsgi.layers.scope import SCOPE_KEY, RequestScope
from graywsgi.core.context import ENVIRON_KEY, GrayContext, _current_context

try:
    import cython
except ImportError:  # plain Python without Cython installed
    from graywsgi import _shadow as cython

if t.TYPE_CHECKING:  # pragma: no cover
    from graywsgi import _capi  # C helpers of the compiled form (graywsgi/_capi.pxd)
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from graywsgi.layers.identifiers import IdentifierReader

__all__ = ["Pipeline", "TimingStep", "DecisionStep", "Exchange", "METRICS", "EXTRACTION", "DECISION"]

#: The stages of the request path, in order; a layer adopts only later ones.
METRICS, EXTRACTION, DECISION = 0, 1, 2


class Exchange(RequestScope):
    """One request through a :class:`Pipeline`: its response, plus what the
    steps finish when the response ends (the outcome, the timing). Its fields
    start as a :class:`~graywsgi.layers.scope.RequestScope`'s do."""

    #: The pipeline whose steps finish the response.
    pipeline: Pipeline
    #: The request's environ while the response is open (Metrics reads what
    #: the layers decided from it); dropped at the end.
    environ: WSGIEnvironment | None
    #: Whether a step waits for the end of the response.
    finishing: bool
    #: Metrics: ``perf_counter()`` at the start, and the events :func:`~graywsgi.layers.events.note` added.
    started: float
    events: list[tuple[str, dict[str, str]]] | None
    #: Guard: the route whose outcome is recorded (``None``: none), the
    #: breaker's admission (``None``: the baseline) and its clock at the start.
    route: t.Any
    admission: t.Any
    guarded_at: float
    #: Guard, while a canary's status is held: the environ before the canary
    #: saw it, the rule set that decided and the canary's decision.
    original: WSGIEnvironment | None
    rules: t.Any
    decision: t.Any

    def __init__(self, pipeline: Pipeline, start_response: StartResponse) -> None:
        RequestScope.__init__(self, start_response)
        self.pipeline = pipeline

    def restart(self) -> None:
        """Forget a held response that was given up: the next one starts afresh."""
        self.holding = False
        self.code = None
        self.line = self.headers = self.exc_info = self.first = None
        self.raised = False

    def _needs_close(self) -> bool:
        return self.finishing or self._callbacks is not None

    def _ended(self, raised: bool) -> None:
        try:
            self._run_callbacks(raised)  # the layers inside first
        finally:
            if self.finishing:
                self.finishing = False
                try:
                    self.pipeline._end_steps(self, raised)
                finally:
                    self.environ = None


if not cython.compiled:  # plain Python: the class attributes stand in for the fields' first values
    for _name, _value in {"pipeline": None, "environ": None, "finishing": False, "started": 0.0, "events": None,
                          "route": None, "admission": None, "guarded_at": 0.0, "original": None, "rules": None,
                          "decision": None}.items():
        setattr(Exchange, _name, _value)


def _new_exchange(pipeline: Pipeline, start_response: StartResponse) -> Exchange:
    """``Exchange(pipeline, start_response)``, without the call to ``__init__``."""
    exchange = Exchange.__new__(Exchange)  # every other field None, 0 or False
    exchange.pipeline = pipeline
    exchange.start_response = start_response
    exchange.calling = True
    return exchange


class TimingStep:
    """What a timing layer (Metrics) does per request."""

    def begin(self, exchange: Exchange, environ: WSGIEnvironment) -> None:
        """The request enters: note what the end of its response needs."""
        raise NotImplementedError

    def finish(self, exchange: Exchange, raised: bool) -> None:
        """The response ended (``raised``: with an error)."""
        raise NotImplementedError


class DecisionStep:
    """What a decision layer (CanarySplit, Router) does per request."""

    def route(self, environ: WSGIEnvironment, context: GrayContext, exchange: Exchange) -> WSGIApplication:
        """Decide and record the route; return the application that serves it."""
        raise NotImplementedError

    def retry(
        self, environ: WSGIEnvironment, exchange: Exchange, iterable: t.Iterable[bytes] | None
    ) -> t.Iterable[bytes]:
        """A held response returned ``iterable`` (``None``: it raised): settle it."""
        raise NotImplementedError

    def finish(self, exchange: Exchange, raised: bool) -> None:
        """The response ended: record its outcome."""


class Pipeline:
    """A graywsgi layer: a WSGI callable that runs its step, and the steps of
    the graywsgi layers it wraps directly, in one call. See the module docs.

    Subclasses set :attr:`_stage`, keep their step in ``_step`` and call
    :meth:`_fuse` at the end of ``__init__``.
    """

    #: Where the layer's step runs in the request path.
    _stage = METRICS

    def __init__(self, app: WSGIApplication) -> None:
        self._app = app
        self._step: t.Any = None
        self._fused = False
        self._adopters: weakref.WeakSet[Pipeline] = weakref.WeakSet()
        self._metrics: TimingStep | None = None
        self._extraction: IdentifierReader | None = None
        self._implicit: IdentifierReader | None = None
        self._decision: DecisionStep | None = None
        self._innermost: Pipeline = self

    @property
    def app(self) -> WSGIApplication:
        """The WSGI application this layer wraps."""
        return self._app

    @app.setter
    def app(self, app: WSGIApplication) -> None:
        self._app = app
        if self._fused:
            self._fuse()
            for adopter in list(self._adopters):
                adopter._fuse()

    # -- building ------------------------------------------------------------

    def _fuse(self) -> None:
        """Adopt the steps of the graywsgi layers this one wraps directly."""
        self._metrics = self._extraction = self._implicit = self._decision = None
        layer: t.Any = self
        stage = -1
        while isinstance(layer, Pipeline) and layer._stage > stage:
            stage = layer._stage
            if layer is not self:
                layer._adopters.add(self)
            self._innermost = layer
            if stage == METRICS:
                self._metrics = layer._step
            elif stage == EXTRACTION:
                self._extraction = layer._step
            else:
                self._decision = layer._step
                if self._extraction is None:
                    self._implicit = layer._standalone_extraction()._step
                break
            layer = layer._app
        self._fused = True

    def _standalone_extraction(self) -> t.Any:
        """The Extraction a decision step uses when no context is bound."""
        raise NotImplementedError

    # -- the request path -------------------------------------------------------

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        return self._call(environ, start_response)

    def _call(self, environ: WSGIEnvironment, start_response: StartResponse) -> t.Iterable[bytes]:
        """The request path (``__call__``; a method of its own so that the
        compiled form can type its arguments)."""
        exchange = _new_exchange(self, start_response)
        outer = environ.get(SCOPE_KEY)
        owner = not (isinstance(outer, RequestScope) and outer.calling)
        if owner:
            environ[SCOPE_KEY] = exchange
            scope: RequestScope = exchange
        else:
            scope = outer  # type: ignore[assignment]  # a joinable RequestScope: `owner` checked it
        gray_before = scope.gray
        # 1. Metrics: the clock starts.
        metrics = self._metrics
        if metrics is not None:
            metrics.begin(exchange, environ)
        # 2. Extraction: the gray context.
        extraction = self._extraction
        if extraction is None and self._implicit is not None:
            found = environ.get(ENVIRON_KEY)
            if type(found) is not GrayContext and not isinstance(found, GrayContext):
                extraction = self._implicit
        token = None
        context: GrayContext
        if extraction is not None:
            extracted = extraction.context(environ)
            if extracted is None:  # refused: the extraction breaker is open
                return self._answer(exchange, owner, extraction.refusal, environ)
            context = environ[ENVIRON_KEY] = extracted
        else:
            context = environ.get(ENVIRON_KEY)  # type: ignore[assignment]  # bound by a layer outside, or None
        decision = self._decision
        try:
            # 3. Decision: the route, recorded in the context, and what serves it.
            if decision is not None:
                target = decision.route(environ, context, exchange)
                context = environ[ENVIRON_KEY]
            else:
                target = self._innermost._app
            # The context is bound for the application call: with a token when
            # this pipeline made it, else over the binding of the layer outside
            # (whose token restores what was before).
            if extraction is not None:
                if cython.compiled:
                    token = _capi.context_set(_current_context, context)
                else:
                    token = _current_context.set(context)
            elif decision is not None:
                _current_context.set(context)
            # 4. The application.
            try:
                iterable = target(environ, exchange)
            except Exception:
                if not exchange.holding or exchange.committed:
                    raise
                iterable = decision.retry(environ, exchange, None)  # type: ignore[union-attr]
            else:
                if exchange.holding and not exchange.committed:
                    iterable = decision.retry(environ, exchange, iterable)  # type: ignore[union-attr]
        except BaseException:
            if token is not None:
                _current_context.reset(token)
            if owner:
                exchange.abort()
            elif exchange.finishing:
                exchange.calling = False
                exchange._ended(True)
            raise
        if token is not None:
            if cython.compiled:
                if scope.gray is gray_before:  # an Extraction nested inside has set it: the innermost wins
                    scope.gray = _capi.context_get(_current_context)
                _capi.context_reset(_current_context, token)
            else:
                if scope.gray is gray_before:
                    scope.gray = _current_context.get()  # as the layers below left it (route, ...)
                _current_context.reset(token)
        if owner:
            return exchange.finish(iterable)
        exchange.calling = False
        if exchange.finishing:
            scope.on_close(exchange._ended)
        return scope.joined(iterable)

    def _answer(
        self, exchange: Exchange, owner: bool, answer: WSGIApplication, environ: WSGIEnvironment
    ) -> t.Iterable[bytes]:
        """Serve ``answer`` (a refusal) instead of the application."""
        try:
            iterable = answer(environ, exchange)
        except BaseException:
            if owner:
                exchange.abort()
            raise
        if owner:
            return exchange.finish(iterable)
        exchange.calling = False
        if exchange.finishing:
            t.cast(RequestScope, environ[SCOPE_KEY]).on_close(exchange._ended)
        return iterable

    def _end_steps(self, exchange: Exchange, raised: bool) -> None:
        """The response ended: the steps' work at the end, inner steps first."""
        try:
            decision = self._decision
            if decision is not None and exchange.route is not None:
                decision.finish(exchange, raised)
        finally:
            metrics = self._metrics
            if metrics is not None and exchange.events is not None:
                metrics.finish(exchange, raised)
