"""Tests of graywsgi.evolution.api: Api, Stage and Exemption -- dated stages, path mapping, configuration."""

from __future__ import annotations

import typing as t

import pytest

from graywsgi.errors import ConfigurationError
from graywsgi.evolution.api import Api, Exemption, Stage
from graywsgi.evolution.stages import ProtocolEvolution
from tests.conftest import BufferedClient
from tests.evolution.conftest import T0, Clock, client, echo, orders


# -- dated stages ---------------------------------------------------------------


def test_dated_stages_move_on_their_own() -> None:
    clock = Clock()
    api = orders(transition_at=T0 + 10, switch_at=T0 + 20)
    evolution = ProtocolEvolution(echo, apis=[api], clock=clock)
    c = BufferedClient(evolution)
    seen = []
    for now in (T0, T0 + 9.999, T0 + 10, T0 + 19, T0 + 20, T0 + 1000):
        clock.now = now
        seen.append((c.get("/v1/orders").status_code, evolution.status()[0]["stage"]))
    assert seen == [
        (200, "compat"), (200, "compat"), (308, "transition"),
        (308, "transition"), (410, "switch"), (410, "switch"),
    ]


@pytest.mark.parametrize(
    "configured, transition_at, switch_at, now, expected",
    [
        pytest.param("compat", None, None, T0, "compat", id="nothing dated"),
        pytest.param("transition", None, None, T0, "transition", id="configured transition"),
        pytest.param("switch", T0 + 10, None, T0, "switch", id="configured stage is a floor"),
        pytest.param("transition", T0 - 10, T0 + 10, T0, "transition", id="past date does not go back"),
        pytest.param("compat", None, T0, T0, "switch", id="compat straight to switch"),
        pytest.param("compat", T0 + 1, T0 + 2, T0 + 1.5, "transition", id="between dates"),
    ],
)
def test_stage_table(configured: str, transition_at: float | None, switch_at: float | None, now: float,
                     expected: str) -> None:
    api = orders(stage=configured, transition_at=transition_at, switch_at=switch_at)
    assert api.stage_at(now) is Stage(expected)


# -- path mapping ---------------------------------------------------------------------


def test_templates_map_variables() -> None:
    api = Api("users", old="/v1/users/{id}/profile", new="/v2/accounts/{id}", stage="transition")
    c = client(api)
    assert c.get("/v1/users/42/profile").headers["Location"] == "/v2/accounts/42"
    assert c.get("/v1/users/42/profile/x").status_code == 200  # templates match whole paths
    assert c.get("/v2/accounts/42").headers["X-Protocol-Version"] == "2"


# -- configuration -------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"old": "v1"}, id="relative path"),
        pytest.param({"old": "/v1/{id}", "new": "/v2"}, id="variables differ"),
        pytest.param({"old": "/v1/{id}/{id}", "new": "/v2/{id}"}, id="variable twice"),
        pytest.param({"stage": "retired"}, id="unknown stage"),
        pytest.param({"redirect_status": 302}, id="302"),
        pytest.param({"transition_at": T0 + 5, "switch_at": T0}, id="switch before transition"),
        pytest.param({"switch_at": "2026-01-01T00:00:00"}, id="naive date"),
        pytest.param({"switch_at": "soon"}, id="not a date"),
        pytest.param({"mirror_stages": ["switch"]}, id="mirror in switch"),
        pytest.param({"old_version": "1 0"}, id="bad version token"),
    ],
)
def test_configuration_errors(options: dict[str, t.Any]) -> None:
    values = {"old": "/v1/orders", "new": "/v2/orders", **options}
    with pytest.raises(ConfigurationError):
        Api("orders", **values)


def test_evolution_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        ProtocolEvolution(echo, apis=[])
    with pytest.raises(ConfigurationError):
        ProtocolEvolution(echo, apis=[orders(), orders()])
    with pytest.raises(ConfigurationError):
        Exemption("X SDK", "<2")
    with pytest.raises(ConfigurationError):
        Exemption("X-SDK", ">=banana")
