"""
The admin page
==============

The one HTML page of the admin app (:class:`~graywsgi.rollout.admin.app.AdminApp`,
``GET /``): :func:`render_page` turns a status document
(:mod:`graywsgi.rollout.admin.status`) into HTML with no external assets.
The page's buttons post to the actions of
:mod:`graywsgi.rollout.admin.actions`; the app serves the page with the
Content-Security-Policy built here.

The kill switch (a red banner while set), the rollout plan's steps with the
current one marked, each route's breaker, window (requests, errors, error
and slow-call rates, mean latency where the guard measures it) and a small
inline-SVG chart of its error rate, and each rule's shares: configured, and
in force (after the kill switch and breakers). The chart is drawn from a
short history the app keeps in memory, one sample per route per status
render (at most one a second, the last
:data:`~graywsgi.rollout.admin.status.HISTORY_SIZE` kept); each
worker keeps its own. The page reloads itself every 10 seconds.

Every value the page shows -- rule, route and step names included -- is
HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import time
import typing as t

__all__ = ["render_page"]

_STYLE = """
:root { color-scheme: light; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #57606a; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1f2328;
       background: #f6f8fa; }
header { background: #24292f; color: #fff; padding: 10px 24px; display: flex; gap: 24px; align-items: baseline; }
header h1 { font-size: 18px; margin: 0; }
header .meta { color: #d0d7de; font-size: 13px; }
main { padding: 16px 24px; max-width: 1200px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 12px 16px; margin-bottom: 16px; }
h2 { font-size: 16px; margin: 0 0 8px; }
.banner { font-size: 20px; font-weight: 600; padding: 14px 16px; border-radius: 6px; margin-bottom: 16px; }
.banner.set { background: var(--bad); color: #fff; }
.banner.clear { background: #dafbe1; color: var(--ok); border: 1px solid #aceebb; }
.banner.unknown { background: #fff8c5; color: var(--warn); border: 1px solid #eac54f; }
.banner small { display: block; font-size: 13px; font-weight: 400; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #d8dee4; vertical-align: middle; }
thead th { font-size: 12px; text-transform: uppercase; color: var(--muted); }
td.num { font-variant-numeric: tabular-nums; }
.state { font-weight: 600; }
.state.closed, .state.taking { color: var(--ok); }
.state.open, .state.off { color: var(--bad); }
.state.half_open { color: var(--warn); }
ol.steps { display: flex; flex-wrap: wrap; gap: 6px; list-style: none; padding: 0; margin: 8px 0; }
ol.steps li { padding: 4px 10px; border-radius: 12px; border: 1px solid #d0d7de; color: var(--muted); }
ol.steps li.done { background: #f6f8fa; }
ol.steps li.current { background: #0969da; border-color: #0969da; color: #fff; font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; }
.actions { display: flex; flex-wrap: wrap; gap: 12px; align-items: center; }
.actions form { margin: 0; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid #d0d7de; background: #f6f8fa;
         cursor: pointer; }
button.danger { background: var(--bad); border-color: var(--bad); color: #fff; }
#result.ok { color: var(--ok); } #result.bad { color: var(--bad); }
.muted { color: var(--muted); }
svg.chart { background: #f6f8fa; border-radius: 4px; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var actor = document.getElementById("actor");
  var result = document.getElementById("result");
  try { actor.value = window.localStorage.getItem("graywsgi-actor") || ""; } catch (e) { /* no storage */ }
  var timer = null;
  function schedule(ms) {
    if (timer !== null) { clearTimeout(timer); }
    timer = setTimeout(function () {
      if (document.activeElement === actor) { schedule(ms); } else { window.location.reload(); }
    }, ms);
  }
  schedule(10000);
  Array.prototype.forEach.call(document.querySelectorAll("form.action"), function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var what = form.getAttribute("data-action");
      var question = form.getAttribute("data-confirm");
      if (question && !window.confirm(question)) { return; }
      if (timer !== null) { clearTimeout(timer); }
      var name = actor.value.trim().replace(/[^\\x20-\\x7e]/g, "?");
      try { window.localStorage.setItem("graywsgi-actor", name); } catch (e) { /* no storage */ }
      result.className = "";
      result.textContent = what + "\\u2026";
      fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        headers: {"X-CSRF-Token": form.elements.csrf.value, "X-Actor": name || "unknown"}
      }).then(function (response) {
        return response.json().then(function (body) { return {ok: response.ok, status: response.status, body: body}; });
      }).then(function (answer) {
        result.className = answer.ok ? "ok" : "bad";
        result.textContent = answer.ok ? what + ": done" : what + " refused (" + answer.status + "): " +
          (answer.body.detail || "");
        schedule(answer.ok ? 700 : 6000);
      }).catch(function (error) {
        result.className = "bad";
        result.textContent = what + " failed: " + error;
        schedule(10000);
      });
    });
  });
})();
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


_CSP = (
    f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; img-src data:;"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _percent(rate: float | None, digits: int = 1) -> str:
    if rate is None:
        return "–"
    return f"{100 * rate:.{digits}f} %"


def _milliseconds(seconds: object) -> str:
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "–"
    milliseconds = 1000 * seconds
    return f"{milliseconds:.1f} ms" if milliseconds < 10 else f"{milliseconds:.0f} ms"


def _when(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        return "–"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(value))


def _chart(route: str, series: t.Sequence[t.Sequence[t.Any]], threshold: float | None) -> str:
    """A small SVG line chart of an error-rate history."""
    width, height, pad = 220, 48, 3
    rates = [float(r) for _, r in series if r is not None]
    top: float = max([0.05, *rates, *([threshold] if threshold is not None and threshold <= 1 else [])]) * 1.1
    times = [float(when) for when, _ in series]
    first, span = (times[0], max(times[-1] - times[0], 1.0)) if times else (0.0, 1.0)

    def x(when: float) -> float:
        return pad + (width - 2 * pad) * (when - first) / span

    def y(rate: float) -> float:
        return height - pad - (height - 2 * pad) * rate / top

    parts = []
    if threshold is not None and threshold <= 1:
        parts.append(
            f'<line x1="0" x2="{width}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" stroke="#cf222e"'
            ' stroke-dasharray="3 3" stroke-width="1"/>'
        )
    run: list[str] = []
    last: tuple[float, float] | None = None
    for when, rate in series:
        if rate is None:
            if len(run) > 1:
                parts.append(f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{" ".join(run)}"/>')
            run = []
            continue
        point = (x(float(when)), y(float(rate)))
        run.append(f"{point[0]:.1f},{point[1]:.1f}")
        last = point
    if len(run) > 1:
        parts.append(f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{" ".join(run)}"/>')
    if last is not None:
        parts.append(f'<circle cx="{last[0]:.1f}" cy="{last[1]:.1f}" r="2.5" fill="#0969da"/>')
    latest = _percent(rates[-1]) if rates else "no traffic"
    label = f"Error rate of {route}: {len(series)} samples, latest {latest}, scale 0 to {_percent(top, 0)}"
    return (
        f'<svg class="chart" role="img" aria-label="{_e(label)}" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{_e(label)}</title>'
        + "".join(parts)
        + "</svg>"
    )


def _share_bar(shares: t.Mapping[str, float], default: str) -> str:
    """A stacked horizontal bar of shares (percent per cluster)."""
    palette = ("#0969da", "#8250df", "#bf3989", "#9a6700", "#1b7c83")
    width, height = 200, 14
    parts, x, n = [], 0.0, 0
    for cluster, share in sorted(shares.items(), key=lambda item: (item[0] == default, item[0])):
        if share <= 0:
            continue
        colour = "#8c959f" if cluster == default else palette[n % len(palette)]
        n += cluster != default
        w = width * share / 100
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{colour}">'
            f"<title>{_e(cluster)}: {share:g} %</title></rect>"
        )
        x += w
    return (
        f'<svg role="img" aria-hidden="true" width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        f' xmlns="http://www.w3.org/2000/svg">{"".join(parts)}</svg>'
    )


def _share_text(shares: t.Mapping[str, float], default: str) -> str:
    ordered = sorted(shares.items(), key=lambda item: (item[0] == default, item[0]))
    return ", ".join(f"{_e(cluster)} {share:g} %" for cluster, share in ordered)


def _render_rollout(rollout: t.Mapping[str, t.Any] | None) -> str:
    if rollout is None:
        return '<p class="muted">No rollout plan.</p>'
    out = []
    steps, current = rollout.get("steps"), rollout.get("step")
    if isinstance(steps, list) and isinstance(current, int) and not isinstance(current, bool):
        items = []
        for i, name in enumerate(steps):
            kind = "done" if i < current else "current" if i == current else "todo"
            mark = ' aria-current="step"' if i == current else ""
            items.append(f'<li class="{kind}"{mark}>{i + 1}. {_e(name)}</li>')
        out.append(f'<ol class="steps" id="rollout-steps">{"".join(items)}</ol>')
        name = rollout.get("step_name", steps[current] if 0 <= current < len(steps) else current)
        out.append(f'<p id="rollout-step">Current step: <strong>{_e(name)}</strong>'
                   f" ({current + 1} of {len(steps)})</p>")
    rows = []
    for key, value in rollout.items():
        if key in ("steps", "step", "step_name"):
            continue
        if key in ("since", "refusal_at") or key.endswith("_at"):
            shown = _when(value)
        elif key == "weight" and isinstance(value, (int, float)):
            shown = f"{value:g} %"
        elif isinstance(value, (dict, list)):
            shown = json.dumps(value, sort_keys=True, default=str)
        elif isinstance(value, bool):
            shown = "yes" if value else "no"
        elif value is None or value == "":
            shown = "–"
        else:
            shown = str(value)
        rows.append(f"<dt>{_e(key.replace('_', ' '))}</dt><dd>{_e(shown)}</dd>")
    out.append(f"<dl>{''.join(rows)}</dl>")
    return "".join(out)


def render_page(document: t.Mapping[str, t.Any], *, csrf: str = "", can_act: bool = True) -> str:
    """The status page for a status document
    (:meth:`~graywsgi.rollout.admin.app.AdminApp.status`)."""
    default = document["default_cluster"]
    kill = document.get("kill_switch")
    if kill is None:
        banner = ('<div class="banner unknown" id="kill-switch">Kill switch: not available'
                  "<small>No state store: the router has no guard.</small></div>")
    elif kill.get("killed") is None:
        banner = (f'<div class="banner unknown" id="kill-switch">Kill switch: unknown'
                  f"<small>{_e(kill.get('error', ''))}</small></div>")
    elif kill["killed"]:
        banner = (f'<div class="banner set" id="kill-switch">Kill switch: SET — canary shares are 0'
                  f"<small>{_e(kill.get('reason') or 'no reason given')} · since {_e(_when(kill.get('since')))}"
                  f" · revision {_e(kill.get('revision'))}</small></div>")
    else:
        reason = kill.get("reason")
        detail = f"last change: {_e(reason)} · {_e(_when(kill.get('since')))}" if reason else "never set"
        banner = (f'<div class="banner clear" id="kill-switch">Kill switch: clear — configured shares apply'
                  f"<small>{detail}</small></div>")

    threshold = document.get("trip_error_rate")
    route_rows = []
    for name, route in document["routes"].items():
        breaker = route.get("breaker")
        if route.get("default"):
            breaker_cell = '<span class="muted">default cluster</span>'
        elif breaker is not None:
            state = str(breaker.get("state"))
            held = " (held)" if breaker.get("held") else ""
            breaker_cell = f'<span class="state {_e(state)}">{_e(state.replace("_", "-"))}{held}</span>'
        elif route.get("shared") and route["shared"].get("open"):
            breaker_cell = '<span class="state open">open (shared)</span>'
        else:
            breaker_cell = '<span class="muted">no traffic yet</span>'
        traffic = (
            '<span class="state taking">taking traffic</span>'
            if route.get("taking_traffic")
            else f'<span class="state off">{_e(route.get("why_not"))}</span>'
        )
        window = route.get("window")
        if window is None:
            counts = '<td colspan="4" class="muted">not measured (no guard)</td>'
        else:
            latency = window.get("mean_latency_seconds")
            latency_text = _milliseconds(latency)
            counts = (
                f'<td class="num">{window["requests"]}</td>'
                f'<td class="num">{window["errors"]} ({_percent(window["error_rate"])})</td>'
                f'<td class="num">{window["slow"]} ({_percent(window["slow_rate"])})</td>'
                f'<td class="num">{latency_text}</td>'
            )
        chart = _chart(name, route.get("error_rate_history", []), threshold)
        route_rows.append(
            f'<tr data-route="{_e(name)}"><th scope="row">{_e(name)}</th><td>{breaker_cell}</td><td>{traffic}</td>'
            f"{counts}<td>{chart}</td></tr>"
        )

    rule_rows = []
    for rule in document["rules"]:
        factor = f" × {rule['factor']:g}" if rule["factor"] != 1 else ""
        rule_rows.append(
            f'<tr data-rule="{_e(rule["name"])}"><th scope="row">{_e(rule["name"])}</th>'
            f'<td>{_e(rule["mode"])}{_e(factor)}</td>'
            f'<td class="shares configured">{_share_bar(rule["shares"], default)}<br>'
            f'{_share_text(rule["shares"], default)}</td>'
            f'<td class="shares in-force">{_share_bar(rule["in_force"], default)}<br>'
            f'{_share_text(rule["in_force"], default)}</td></tr>'
        )
    unmatched = "answered 404" if document.get("no_match") == "404" else f"go to {_e(default)}"

    def action(name: str, label: str, css: str = "", confirm: str = "") -> str:
        confirm_attr = f' data-confirm="{_e(confirm)}"' if confirm else ""
        return (
            f'<form class="action" method="post" action="{name}" data-action="{name}"{confirm_attr}>'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
            f'<button type="submit" id="{name}-button" class="{css}">{_e(label)}</button></form>'
        )

    buttons = []
    if can_act:
        buttons.append(action("rollback", "Roll back (kill switch)", "danger",
                              "Roll back: every canary share becomes 0 on every worker. Continue?"))
        buttons.append(action("resume", "Resume"))
    if document.get("rollout") is not None:
        buttons.append(action("advance", "Advance to the next step"))
    if not buttons:
        buttons.append('<span class="muted">No actions: no state store and no rollout plan.</span>')
    threshold_text = f" Dashed line: the breaker's threshold, {_percent(threshold)}." if threshold is not None else ""

    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>graywsgi admin · {_e(document["rules_version"])}</title>
<link rel="icon" href="data:,">
<style>{_STYLE}</style>
</head>
<body>
<header><h1>graywsgi admin</h1>
<span class="meta">rules <strong id="rules-version">{_e(document["rules_version"])}</strong>
 · default cluster {_e(default)} · {_e(_when(document.get("generated_at")))}</span></header>
<main>
{banner}
<section id="actions"><h2>Actions</h2>
<div class="actions">{"".join(buttons)}
<label>Your name (audit log) <input id="actor" autocomplete="name" maxlength="100"></label>
<span id="result" role="status"></span></div></section>
<section id="rollout"><h2>Rollout plan</h2>{_render_rollout(document.get("rollout"))}</section>
<section id="routes"><h2>Routes</h2>
<table><thead><tr><th>Route</th><th>Breaker</th><th>Traffic</th><th>Requests (window)</th><th>Errors</th>
<th>Slow</th><th>Mean latency</th><th>Error rate</th></tr></thead>
<tbody>{"".join(route_rows)}</tbody></table>
<p class="muted">Charts: error rate per status render in this worker, oldest left.{threshold_text}</p></section>
<section id="rules"><h2>Shares by rule</h2>
<table><thead><tr><th>Rule</th><th>Mode</th><th>Configured</th><th>In force</th></tr></thead>
<tbody>{"".join(rule_rows) or '<tr><td colspan="4" class="muted">No rules.</td></tr>'}</tbody></table>
<p class="muted">Requests no rule matches {unmatched}.</p></section>
</main>
<script>{_SCRIPT}</script>
</body>
</html>
"""
