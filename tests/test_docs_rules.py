"""Rule files shown in the docs load, and do what the text around them says.

Issue 19, item 6 ("Docs that are run"). Every fenced ``yaml``/``yml``/
``json``/``toml`` block of ``docs/*.md`` and ``README.md`` -- and every data
file a page pulls in with ``{literalinclude}`` -- is found here and sorted:

- a **rule file** (a mapping with ``clusters`` or ``rules`` at the top) is
  written to a temporary file with its format's suffix and loaded with
  graywsgi's own loader (:func:`graywsgi.rules.files.load_rules`, what ``Router``
  and ``FileStore`` use), then served: requests go through
  ``Extraction(Router(stable, rule_file, apps={cluster: app, ...}))`` and the
  route in ``environ["graywsgi.decision"]`` (and the app that answered) is
  compared with what the page claims. Each claim is an entry of
  :data:`ROUTES` or :data:`SHARES` (or a test of its own below) that quotes
  the sentence it checks; the quote must still be on the page, so text and
  check cannot drift apart silently. A rule file without any claim must be
  listed in :data:`LOAD_ONLY` with the reason.
- anything else must be listed in :data:`NOT_RULE_FILES` with what it is
  and which test covers it, so a new rule example cannot slip past
  unnoticed as "some other YAML".

The split is checked against the page's own formula, ``fnv1a_32(key) % 100``
(with a salt, ``fnv1a_32(salt + ":" + key) % 100``), computed here by an
independent FNV-1a, over 10,000 gray ids: exactly per id, and the share
within half a percentage point of the weight.
"""

from __future__ import annotations

import json
import re
import time
import tomllib
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from werkzeug.serving import make_server
from werkzeug.test import create_environ

from graywsgi import Extraction, Router
from graywsgi.rules.files import load_rules
from graywsgi.rules.routing import CompiledRules

from .servers import serving

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
DATA_LANGUAGES = {"yaml": ".yaml", "yml": ".yaml", "json": ".json", "toml": ".toml"}
IDS = [f"user-{n}" for n in range(10_000)]


# --- the page's hash, computed independently ----------------------------------


def fnv1a_32(text: str) -> int:
    """32-bit FNV-1a of the UTF-8 bytes (the Go gateway's hash/fnv New32a)."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def bucket(key: str, salt: str | None = None) -> int:
    """routing.md: "The bucket is `fnv1a_32(key) % 100` ... with a salt it is
    `fnv1a_32(salt + ":" + key) % 100`"."""
    return fnv1a_32(f"{salt}:{key}" if salt else key) % 100


def test_the_reference_hash_is_fnv1a() -> None:
    # The published FNV-1a test vectors.
    assert [fnv1a_32(s) for s in ("", "a", "foobar")] == [0x811C9DC5, 0xE40C292C, 0xBF9CF968]


# --- finding the blocks --------------------------------------------------------


@dataclass(frozen=True)
class Block:
    page: str  #: file name of the page (``routing.md``, ``README.md``)
    line: int  #: line of the opening fence
    language: str  #: ``yaml``, ``json``, ``toml`` (``yml`` counts as ``yaml``)
    filename: str | None  #: the file the block stands for: ```yaml openapi.yaml, or a literalinclude
    text: str
    document: t.Any = field(compare=False, hash=False)

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self.document) if isinstance(self.document, dict) else frozenset()

    @property
    def rule_names(self) -> tuple[str, ...]:
        rules = self.document.get("rules") if isinstance(self.document, dict) else None
        if not isinstance(rules, list):
            return ()
        return tuple(rule.get("name", "") for rule in rules if isinstance(rule, dict))


_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`\n]*)$")


def _parse(language: str, text: str, where: str) -> t.Any:
    try:
        if language == "json":
            return json.loads(text)
        if language == "toml":
            return tomllib.loads(text)
        return yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - reported with the block's place
        raise AssertionError(f"{where}: a {language} block that does not parse: {exc}") from exc


def data_blocks(page: Path) -> list[Block]:
    """The page's yaml/yml/json/toml fences and literalincluded data files."""
    lines = page.read_text("utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], opening["indent"]
        end = i + 1
        while end < len(lines) and not re.fullmatch(
            rf"[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*", lines[end]
        ):
            end += 1
        body = "".join(line[len(indent):] + "\n" if line.startswith(indent) else line + "\n" for line in lines[i + 1:end])
        info = opening["info"].split()
        where = f"{page.name}:{i + 1}"
        if info and info[0].lower() in DATA_LANGUAGES:
            language = "yaml" if info[0].lower() == "yml" else info[0].lower()
            filename = info[1] if len(info) > 1 else None
            found.append(Block(page.name, i + 1, language, filename, body, _parse(language, body, where)))
        elif info and info[0] == "{literalinclude}" and len(info) > 1:
            included = (page.parent / info[1]).resolve()
            suffix = included.suffix.lstrip(".").lower()
            if suffix in DATA_LANGUAGES:
                language = "yaml" if suffix == "yml" else suffix
                text = included.read_text("utf-8")
                found.append(Block(page.name, i + 1, language, info[1], text, _parse(language, text, where)))
        i = end + 1
    return found


ALL_BLOCKS = [block for page in PAGES for block in data_blocks(page)]


# --- what is not a rule file ---------------------------------------------------


@dataclass(frozen=True)
class NotARuleFile:
    page: str
    language: str
    keys: frozenset[str]  #: top-level keys that identify the block
    what: str  #: what it is, and what checks it


NOT_RULE_FILES = [
    NotARuleFile("admin.md", "json", frozenset({"action", "outcome"}),
                 "an admin action's JSON answer (output shown to the reader, nothing to load)"),
    NotARuleFile("admin.md", "json", frozenset({"generated_at", "routes", "kill_switch"}),
                 "the /status document (output); its 'clusters' and 'rules' keys are a status report, "
                 "not a rule file"),
    NotARuleFile("checklist.md", "yaml", frozenset({"checks"}),
                 "a rollback checklist: loaded by tests/rollout/checklist/test_file.py::test_docs_page_examples_load"),
    NotARuleFile("checklist.md", "json", frozenset({"breakers", "baseline"}),
                 "the guard status a metrics_within_baseline check reads (input of a check, not a rule file)"),
    NotARuleFile("checklist.md", "json", frozenset({"checklist", "ok", "problems"}),
                 "the JSON report of a checklist run (output)"),
    NotARuleFile("prevalidation.md", "yaml", frozenset({"openapi", "paths"}),
                 "an OpenAPI document with x-gray-rules: run by tests/prevalidation/test_docs.py"),
    NotARuleFile("prevalidation.md", "yaml", frozenset({"Order", "Item"}),
                 "schemas.yaml, the JSON Schemas openapi.yaml refers to: run by tests/prevalidation/test_docs.py"),
    NotARuleFile("prevalidation.md", "json", frozenset({"type", "title", "status", "errors"}),
                 "a problem+json answer (output): its text is checked by tests/prevalidation/test_docs.py"),
    NotARuleFile("configuration.md", "json", frozenset({"$schema"}),
                 "a published JSON Schema (literalinclude of graywsgi/schema/*.json), the loader's own input"),
]


def not_a_rule_file(block: Block) -> NotARuleFile | None:
    for entry in NOT_RULE_FILES:
        if entry.page == block.page and entry.language == block.language and entry.keys <= block.keys:
            return entry
    return None


def is_rule_file(block: Block) -> bool:
    return not_a_rule_file(block) is None and bool(block.keys & {"clusters", "rules"})


RULE_BLOCKS = [block for block in ALL_BLOCKS if is_rule_file(block)]


def rule_block(page: str, rule: str) -> Block:
    """The rule file shown on ``page`` that holds a rule named ``rule``."""
    matches = [b for b in RULE_BLOCKS if b.page == page and rule in b.rule_names]
    assert len(matches) == 1, f"{page}: expected one rule-file block with a rule named {rule!r}, found {len(matches)}"
    return matches[0]


def page_text(page: str) -> str:
    path = ROOT / page if page == "README.md" else ROOT / "docs" / page
    return " ".join(path.read_text("utf-8").split())


def assert_quoted(page: str, quote: str) -> None:
    """The sentence a check is about is still on the page (whitespace folded)."""
    assert " ".join(quote.split()) in page_text(page), f"{page} no longer says: {quote!r}; update the check with the text"


def test_every_data_block_is_a_rule_file_or_accounted_for() -> None:
    unknown = [b.where for b in ALL_BLOCKS if not is_rule_file(b) and not_a_rule_file(b) is None]
    assert not unknown, (
        f"yaml/json/toml blocks that are neither rule files nor listed in NOT_RULE_FILES: {unknown}; "
        "a rule file needs top-level clusters:/rules:, anything else needs an entry saying what it is"
    )
    for entry in NOT_RULE_FILES:
        assert any(not_a_rule_file(b) is entry for b in ALL_BLOCKS), f"NOT_RULE_FILES entry matches nothing: {entry}"


def test_the_rule_examples_are_found() -> None:
    # docs/routing.md shows three rule files; if the extraction stops finding them, every check below is empty.
    assert {(b.page, b.rule_names) for b in RULE_BLOCKS} >= {
        ("routing.md", ("checkout",)),
        ("routing.md", ("everything",)),
        ("routing.md", ("staff-and-beta",)),
    }


# --- 1. every rule file loads with the real loader -----------------------------


def write_block(block: Block, directory: Path, text: str | None = None) -> Path:
    name = block.filename or f"{Path(block.page).stem}-line{block.line}{DATA_LANGUAGES[block.language]}"
    path = directory / Path(name).name
    path.write_text(block.text if text is None else text, "utf-8")
    return path


@pytest.mark.parametrize("block", RULE_BLOCKS, ids=lambda b: b.where)
def test_rule_example_loads(block: Block, tmp_path: Path) -> None:
    compiled = load_rules(write_block(block, tmp_path))
    assert isinstance(compiled, CompiledRules)
    assert tuple(r.name for r in compiled.ruleset.rules) == block.rule_names


# --- serving a rule file ---------------------------------------------------------


def cluster_app(name: str) -> t.Callable[..., list[bytes]]:
    def app(environ: dict[str, t.Any], start_response: t.Callable[..., t.Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]

    return app


def stack(rule_file: Path) -> t.Callable[..., t.Any]:
    """Extraction(Router(...)) dispatching every cluster to an app that names it (``apps`` comes before a
    cluster's ``upstream``, so the gateway example is decided here without proxying; the proxy tests below
    forward for real)."""
    clusters = load_rules(rule_file).ruleset.clusters
    return Extraction(Router(cluster_app("wrapped-app"), rule_file, apps={name: cluster_app(name) for name in clusters}))


@dataclass(frozen=True)
class Request:
    host: str = "shop.example.com"
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()


def send(app: t.Callable[..., t.Any], request: Request) -> tuple[str | None, str | None, str]:
    """(route decided, rule that matched, cluster app that answered)."""
    environ = create_environ(request.path, f"http://{request.host}", headers=list(request.headers))
    status: list[str] = []
    body = app(environ, lambda s, h, exc_info=None: status.append(s))
    try:
        served = b"".join(body).decode()
    finally:
        getattr(body, "close", lambda: None)()
    assert status and status[0].startswith("200"), status
    decision = environ.get("graywsgi.decision")
    return (decision.route if decision else None), (decision.rule if decision else None), served


# --- 2. routes the text promises --------------------------------------------------


@dataclass(frozen=True)
class RouteClaim:
    page: str
    rule: str  #: names the rule-file block on the page
    quote: str  #: the sentence checked, as the page has it
    request: Request
    route: str  #: where the text says the request goes


H = Request


ROUTES = [
    # docs/routing.md, "A rule file": the minimal checkout rule.
    RouteClaim("routing.md", "checkout",
               "`match.host` | exact hosts or `*.example.com` (one or more labels, not the apex); any one",
               H("www.example.com", "/checkout", (("X-Gray-ID", "user-1"),)), "stable"),
    RouteClaim("routing.md", "checkout",
               "`/api` matches `/api/x`, not `/apix`",
               H("shop.example.com", "/checkoutx", (("X-Gray-ID", "user-1"),)), "stable"),
    RouteClaim("routing.md", "checkout",
               "`/api` matches `/api/x`, not `/apix`",
               H("shop.example.com", "/checkout/cart", (("X-Gray-ID", "user-1"),)), "canary"),  # user-1: bucket 0
    RouteClaim("routing.md", "checkout",
               "5. **Default**: everything else, including requests without a key.",
               H("shop.example.com", "/checkout"), "stable"),
    RouteClaim("routing.md", "checkout",
               "`default_cluster` | `stable` | where traffic goes that nothing else claims",
               H("shop.example.com", "/about", (("X-Gray-ID", "user-1"),)), "stable"),
    RouteClaim("routing.md", "checkout",
               "1. **Explicit colour**: `X-Traffic-Color` names a cluster through `colors`.",
               H("www.example.com", "/", (("X-Traffic-Color", "canary"),)), "canary"),
    RouteClaim("routing.md", "checkout",
               "`colors` | `canary`/`gray` → canary, `stable` → stable",
               H("shop.example.com", "/checkout", (("X-Traffic-Color", "gray"),)), "canary"),
    RouteClaim("routing.md", "checkout",
               "`colors` | `canary`/`gray` → canary, `stable` → stable",
               H("shop.example.com", "/checkout", (("X-Gray-ID", "user-1"), ("X-Traffic-Color", "stable"))), "stable"),
    # docs/routing.md, "Conditions beyond the structured matchers": staff and beta testers on canary.
    *[
        RouteClaim("routing.md", "staff-and-beta",
                   "Staff (`X-Employee: true`) and beta testers (a `beta` cookie of `1` or `yes`) "
                   "go to canary, with or without a gray id",
                   H("shop.example.com", "/orders/7", headers), "canary")
        for headers in [
            (("X-Employee", "true"),),
            (("X-Employee", "true"), ("X-Gray-ID", "user-1")),
            (("X-Employee", "true"), ("X-Gray-ID", "user-5")),
            (("Cookie", "beta=1"),),
            (("Cookie", "beta=yes"),),
            (("Cookie", "session=abc; beta=yes"), ("X-Gray-ID", "user-7")),
        ]
    ],
    *[
        RouteClaim("routing.md", "staff-and-beta", "everyone else stays on stable",
                   H("shop.example.com", "/orders/7", headers), "stable")
        for headers in [
            (),
            (("X-Gray-ID", "user-1"),),
            (("X-Employee", "false"), ("X-Gray-ID", "user-1")),
            (("X-Employee", "TRUE"),),
            (("Cookie", "beta=no"),),
            (("Cookie", "beta=0"), ("X-Gray-ID", "user-1")),
        ]
    ],
    RouteClaim("routing.md", "staff-and-beta", "An explicit `X-Traffic-Color` still comes first (step 1).",
               H("shop.example.com", "/orders/7", (("X-Employee", "true"), ("X-Traffic-Color", "stable"))), "stable"),
]


@pytest.mark.parametrize(
    "claim", ROUTES,
    ids=[f"{c.page}:{c.rule}:{c.request.host}{c.request.path}:{dict(c.request.headers)}" for c in ROUTES],
)
def test_route_claimed_by_the_text(claim: RouteClaim, tmp_path: Path) -> None:
    assert_quoted(claim.page, claim.quote)
    block = rule_block(claim.page, claim.rule)
    route, rule, served = send(stack(write_block(block, tmp_path)), claim.request)
    assert (route, served) == (claim.route, claim.route), (
        f"{block.where} ({claim.rule}): {claim.request} went to {route!r} (rule {rule!r}, served by {served!r}); "
        f"the page says {claim.route!r}: {claim.quote!r}"
    )


# --- 3. shares the text promises --------------------------------------------------


@dataclass(frozen=True)
class ShareClaim:
    page: str
    rule: str
    quote: str
    request: Request  #: each of IDS is sent with this host, path and headers, plus X-Gray-ID
    cluster: str
    percent: float  #: the share the text promises
    salt: str | None = None
    file: str | None = None  #: a repository file the page names, instead of a block of the page


SHARES = [
    ShareClaim("routing.md", "checkout",
               "`split` | `[{cluster, weight, group}]`, weights in percent; what they leave goes to `default_cluster`",
               H("shop.example.com", "/checkout"), "canary", 20),
    ShareClaim("routing.md", "everything",
               "`split` | `[{cluster, weight, group}]`, weights in percent; what they leave goes to `default_cluster`",
               H("anything.example.org", "/any/path"), "canary", 5),
    # docs/routing.md, "How a request is decided", step 4: the arithmetic is that of the checkout rule
    # of examples/rules.yaml (host factor 0.9, weight 20, salted), "loaded by the test suite".
    ShareClaim("routing.md", "checkout", "(host 0.9 × path 1.0 × canary 20 % = 18 %)",
               H("shop.example.com", "/checkout/pay", (("X-Tier", "gold"),)), "canary", 18,
               salt="checkout-2026-11", file="examples/rules.yaml"),
    # docs/django.md, "Run the example".
    ShareClaim("django.md", "everyone", "(`examples/django_project/rules.yaml`, 15 % on canary)",
               H("127.0.0.1:8000", "/"), "canary", 15, file="examples/django_project/rules.yaml"),
]


@pytest.mark.parametrize("claim", SHARES, ids=[f"{c.file or c.page}:{c.rule}:{c.percent}%" for c in SHARES])
def test_share_claimed_by_the_text(claim: ShareClaim, tmp_path: Path) -> None:
    assert_quoted(claim.page, claim.quote)
    if claim.file:
        rule_file = ROOT / claim.file
        assert claim.file in page_text(claim.page), f"{claim.page} does not name {claim.file}"
        assert claim.rule in [r.name for r in load_rules(rule_file).ruleset.rules]
    else:
        rule_file = write_block(rule_block(claim.page, claim.rule), tmp_path)
    app = stack(rule_file)
    wrong, hits = [], 0
    for gray_id in IDS:
        request = Request(claim.request.host, claim.request.path, (*claim.request.headers, ("X-Gray-ID", gray_id)))
        route, rule, served = send(app, request)
        assert rule == claim.rule and route == served, (gray_id, route, rule, served)
        expected = claim.cluster if bucket(gray_id, claim.salt) < claim.percent else "stable"
        hits += route == claim.cluster
        if route != expected:
            wrong.append((gray_id, route, expected))
    share = 100 * hits / len(IDS)
    assert not wrong, f"{len(wrong)} ids not routed by fnv1a_32 bucket < {claim.percent}: {wrong[:5]}"
    assert abs(share - claim.percent) <= 0.5, f"{claim.cluster} got {share:.2f} % of {len(IDS)} ids, the page says {claim.percent} %"


def test_raising_the_weight_only_adds_users(tmp_path: Path) -> None:
    """routing.md: "Entries own contiguous runs of the 100 hash buckets in declared order, so raising a
    canary weight only ever adds users" -- the checkout example at 20 % and again at 30 %."""
    assert_quoted("routing.md", "so raising a canary weight only ever adds users")
    block = rule_block("routing.md", "checkout")
    assert block.text.count("weight: 20") == 1
    before, after = tmp_path / "before", tmp_path / "after"
    before.mkdir()
    after.mkdir()
    at_20 = stack(write_block(block, before))
    at_30 = stack(write_block(block, after, block.text.replace("weight: 20", "weight: 30")))
    canary_20 = {i for i in IDS if send(at_20, H("shop.example.com", "/checkout", (("X-Gray-ID", i),)))[0] == "canary"}
    canary_30 = {i for i in IDS if send(at_30, H("shop.example.com", "/checkout", (("X-Gray-ID", i),)))[0] == "canary"}
    assert canary_20 < canary_30
    assert canary_30 - canary_20 == {i for i in IDS if 20 <= bucket(i) < 30}


def test_a_salt_is_prepended_with_a_colon(tmp_path: Path) -> None:
    """routing.md: "with a salt it is `fnv1a_32(salt + ":" + key) % 100`" -- the checkout example, salted,
    and written as JSON (the format table: "YAML, JSON or TOML")."""
    assert_quoted("routing.md", 'with a salt it is `fnv1a_32(salt + ":" + key) % 100`')
    document = rule_block("routing.md", "checkout").document
    document["rules"][0]["salt"] = "spring-sale"
    rule_file = tmp_path / "rules.json"
    rule_file.write_text(json.dumps(document), "utf-8")
    app = stack(rule_file)
    routes = {i: send(app, H("shop.example.com", "/checkout", (("X-Gray-ID", i),)))[0] for i in IDS[:2000]}
    assert routes == {i: "canary" if bucket(i, "spring-sale") < 20 else "stable" for i in IDS[:2000]}
    assert routes != {i: "canary" if bucket(i) < 20 else "stable" for i in IDS[:2000]}


def test_the_django_example_sends_user_1_to_canary_by_weight() -> None:
    """django.md: `curl -s -H 'X-Gray-ID: user-1' 127.0.0.1:8000/  # "route": "canary", "reason": "weight"`."""
    assert_quoted("django.md", """curl -s -H 'X-Gray-ID: user-1' 127.0.0.1:8000/ # "route": "canary", "reason": "weight\"""")
    app = stack(ROOT / "examples" / "django_project" / "rules.yaml")
    environ = create_environ("/", "http://127.0.0.1:8000", headers=[("X-Gray-ID", "user-1")])
    b"".join(app(environ, lambda *a: None))
    decision = environ["graywsgi.decision"]
    assert (decision.route, decision.reason) == ("canary", "weight")


def test_staff_without_a_gray_id_need_percent_mode(tmp_path: Path) -> None:
    """routing.md, under the staff-and-beta rule: "at weight 100 every random draw lands on canary, whereas in
    the default `hash` mode a request without a key is not split and goes to the default cluster (step 5
    above), so staff who send no `X-Gray-ID` would get stable"."""
    assert_quoted("routing.md", "at weight 100 every random draw lands on canary, whereas in the default `hash` "
                                "mode a request without a key is not split and goes to the default cluster (step 5 "
                                "above), so staff who send no `X-Gray-ID` would get stable")
    block = rule_block("routing.md", "staff-and-beta")
    assert block.document["rules"][0]["mode"] == "percent"
    percent = stack(write_block(block, tmp_path))
    staff = H("shop.example.com", "/", (("X-Employee", "true"),))
    assert {send(percent, staff)[0] for _ in range(1000)} == {"canary"}
    hashed_dir = tmp_path / "hash"
    hashed_dir.mkdir()
    assert block.text.count("    mode: percent\n") == 1
    hashed = stack(write_block(block, hashed_dir, block.text.replace("    mode: percent\n", "")))
    assert send(hashed, staff)[:2] == ("stable", "staff-and-beta")
    assert send(hashed, H("shop.example.com", "/", (("X-Employee", "true"), ("X-Gray-ID", "user-2"))))[0] == "canary"


def test_a_trust_policy_leaves_x_employee_alone(tmp_path: Path) -> None:
    """routing.md: "`X-Employee` and the `beta` cookie are not gray headers, so a `TrustPolicy` does not remove
    them: strip `X-Employee` from outside requests at your gateway"."""
    from graywsgi import TrustPolicy

    assert_quoted("routing.md", "`X-Employee` and the `beta` cookie are not gray headers, so a `TrustPolicy` does "
                                "not remove them")
    rule_file = write_block(rule_block("routing.md", "staff-and-beta"), tmp_path)
    app: t.Any = Extraction(Router(cluster_app("stable"), rule_file, apps={"canary": cluster_app("canary")}),
                     trust=TrustPolicy(trusted_networks=["10.0.0.0/8"]))
    for headers in ([("X-Employee", "true")], [("Cookie", "beta=yes")]):
        environ = create_environ("/", "http://shop.example.com", headers=headers,
                                 environ_overrides={"REMOTE_ADDR": "203.0.113.9"})  # not a trusted network
        assert b"".join(app(environ, lambda *a: None)) == b"canary"
    environ = create_environ("/", "http://shop.example.com", headers=[("X-Traffic-Color", "canary")],
                             environ_overrides={"REMOTE_ADDR": "203.0.113.9"})
    assert b"".join(app(environ, lambda *a: None)) == b"stable"  # a gray header from outside is removed


# --- 4. the gray gateway example really proxies ------------------------------------


def upstream_app(name: str) -> t.Callable[..., list[bytes]]:
    def app(environ: dict[str, t.Any], start_response: t.Callable[..., t.Any]) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            time.sleep(1.5)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        seen = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        answer = json.dumps({"upstream": name, "path": environ["PATH_INFO"], "body": len(body), "headers": seen})
        start_response("200 OK", [("Content-Type", "application/json"), ("Keep-Alive", "timeout=5")])
        return [answer.encode()]

    return app


@pytest.fixture
def upstreams() -> t.Iterator[dict[str, str]]:
    """A local server standing in for each upstream of the gateway example: cluster -> URL."""
    clusters = rule_block("routing.md", "everything").document["clusters"]
    with serving({name: upstream_app(name) for name in clusters}) as ports:
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}


def gateway_rules(tmp_path: Path, urls: dict[str, str]) -> Path:
    """The page's gateway rule file with each upstream URL replaced by its stand-in's."""
    block = rule_block("routing.md", "everything")
    text = block.text
    for name, spec in block.document["clusters"].items():
        assert text.count(spec["upstream"]) == 1, spec
        text = text.replace(spec["upstream"], urls[name])
    return write_block(block, tmp_path, text)


def call(app: t.Callable[..., t.Any], path: str = "/orders/7", method: str = "GET", data: bytes = b"",
         headers: t.Sequence[tuple[str, str]] = ()) -> tuple[str, dict[str, str], bytes, t.Any]:
    environ = create_environ(path, "http://shop.example.com", method=method, data=data or None, headers=list(headers),
                             environ_overrides={"REMOTE_ADDR": "192.0.2.10"})
    started: list[t.Any] = []
    body = app(environ, lambda status, hdrs, exc_info=None: started.append((status, hdrs)))
    try:
        payload = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    status, hdrs = started[0]
    return status, {k.lower(): v for k, v in hdrs}, payload, environ.get("graywsgi.decision")


def test_the_gateway_example_forwards_each_cluster_to_its_upstream(tmp_path: Path, upstreams: dict[str, str]) -> None:
    """routing.md: "**proxy**: a cluster with `upstream: http://10.0.0.7:8000` is forwarded there (pooled keep-alive
    connections, streamed bodies, hop-by-hop headers dropped, `X-Forwarded-*` added ..." -- and the 5 % split."""
    assert_quoted("routing.md", "a cluster with `upstream: http://10.0.0.7:8000` is forwarded there (pooled keep-alive "
                                "connections, streamed bodies, hop-by-hop headers dropped, `X-Forwarded-*` added")
    app = Extraction(Router(cluster_app("not-proxied"), gateway_rules(tmp_path, upstreams)))
    canary_ids = [i for i in IDS[:400] if bucket(i) < 5]
    stable_ids = [i for i in IDS[:400] if bucket(i) >= 5]
    assert canary_ids and stable_ids
    for gray_id in [*canary_ids[:5], *stable_ids[:5]]:
        expected = "canary" if bucket(gray_id) < 5 else "stable"
        status, headers, payload, decision = call(
            app, method="POST", data=b"x" * 100_000,
            headers=[("X-Gray-ID", gray_id), ("X-Custom", "kept"), ("Proxy-Authorization", "Basic c2VjcmV0"),
                     ("Content-Type", "application/octet-stream")],
        )
        answer = json.loads(payload)
        assert status.startswith("200") and decision.route == expected and answer["upstream"] == expected, (gray_id, answer)
        assert answer["path"] == "/orders/7" and answer["body"] == 100_000
        assert answer["headers"]["X-Custom"] == "kept" and "Proxy-Authorization" not in answer["headers"]
        assert answer["headers"]["X-Forwarded-For"] == "192.0.2.10"
        assert answer["headers"]["X-Forwarded-Host"] == "shop.example.com"
        assert answer["headers"]["X-Forwarded-Proto"] == "http"
        assert "keep-alive" not in headers  # hop-by-hop, from the upstream's answer


def test_the_gateway_example_answers_502_and_504_as_problem_json(tmp_path: Path, upstreams: dict[str, str]) -> None:
    """routing.md: "upstream down → 502, timeout → 504, both problem+json"."""
    assert_quoted("routing.md", "upstream down → 502, timeout → 504, both problem+json")
    stable_id = next(i for i in IDS if bucket(i) >= 5)
    slow = Extraction(Router(cluster_app("not-proxied"), gateway_rules(tmp_path, upstreams), proxy_timeout=0.3))
    status, headers, _, _ = call(slow, "/slow", headers=[("X-Gray-ID", stable_id)])
    assert status.startswith("504") and headers["content-type"].startswith("application/problem+json")

    with make_server("127.0.0.1", 0, upstream_app("gone")) as gone:
        closed = f"http://127.0.0.1:{gone.port}"
    down_dir = tmp_path / "down"
    down_dir.mkdir()
    down = Extraction(Router(cluster_app("not-proxied"), gateway_rules(down_dir, {**upstreams, "stable": closed})))
    status, headers, _, _ = call(down, headers=[("X-Gray-ID", stable_id)])
    assert status.startswith("502") and headers["content-type"].startswith("application/problem+json")


# --- 5. rule files without a claim -------------------------------------------------

#: (page, rule name) -> why the page claims no outcome for it. Empty today: every rule example says what it does.
LOAD_ONLY: dict[tuple[str, str], str] = {}


def test_every_rule_example_is_checked_against_its_text() -> None:
    checked = {(c.page, c.rule) for c in ROUTES} | {(c.page, c.rule) for c in SHARES if c.file is None}
    checked |= {("routing.md", "everything")}  # the proxy tests above
    for block in RULE_BLOCKS:
        names = {(block.page, name) for name in block.rule_names}
        assert names & (checked | set(LOAD_ONLY)), (
            f"{block.where}: rule example {block.rule_names} loads, but nothing checks what the page says it does; "
            "add a RouteClaim/ShareClaim quoting the text, or a LOAD_ONLY entry saying why there is none"
        )


# --- 6. the rule set in graywsgi.rules.model' docstring (docs/api.md renders it) -------------


def test_the_api_pages_yaml_is_the_same_rule_set_as_its_python() -> None:
    """graywsgi/rules/model.py, shown by docs/api.md: "The same rule set as YAML::"."""
    import graywsgi.rules.model
    from graywsgi.rules.files import parse_rules

    doc = graywsgi.rules.model.__doc__ or ""
    python = re.search(r"\.\. code-block:: python\n\n(.*?)\n\S", doc, re.S)
    yaml_text = re.search(r"The same rule set as YAML::\n\n(.*?)\n\S", doc, re.S)
    assert python and yaml_text
    namespace: dict[str, t.Any] = {}
    exec(compile(_dedent(python.group(1)), "graywsgi.rules docstring", "exec"), namespace)  # noqa: S102
    from_yaml = parse_rules(_dedent(yaml_text.group(1)), filename="rules-docstring.yaml").ruleset
    assert from_yaml.to_dict() == namespace["rules"].to_dict()


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text) + "\n"
