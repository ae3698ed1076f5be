"""The workbench through its test client: sign-in, roles, CSRF, values only for stewards,
decisions audited and honoured by the next nightly run, and no hold on the warehouse."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from urllib.parse import parse_qs, quote, urlsplit

import duckdb

from custpipe.steward import store
from custpipe_tests.conftest import run_nightly
from custpipe_tests.steward.conftest import PASSWORD, client, csrf_of, sign_in

# -- sign-in --------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page(steward_settings):
    anonymous = client(steward_settings)
    response = anonymous.get("/inbox?x=1")
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=/inbox%3Fx%3D1"
    assert anonymous.get("/static/vendor/htmx.min.js").status_code == 200  # assets are public


def test_sign_in_with_the_right_password_only_and_audited(steward_settings):
    anonymous = client(steward_settings)
    token = csrf_of(anonymous)
    wrong = anonymous.post(
        "/login", data={"username": "ann", "password": "nope", "csrf_token": token}
    )
    assert wrong.status_code == 401 and "Wrong user or password" in wrong.text
    unknown = anonymous.post(
        "/login", data={"username": "nobody", "password": PASSWORD, "csrf_token": token}
    )
    assert unknown.status_code == 401
    assert anonymous.get("/golden").status_code == 303  # still signed out

    signed = sign_in(anonymous, "ann")
    cookie = signed.headers["set-cookie"].lower()
    assert "custpipe_steward=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "secure" not in cookie  # loopback over http by default; secure_cookies: true sets it
    assert anonymous.get("/golden").status_code == 200
    actions = [(e["actor"], e["action"]) for e in store.audit_entries(_store(steward_settings))]
    assert ("ann", "login_failed") in actions and ("nobody", "login_failed") in actions
    assert ("ann", "login") in actions


def test_a_new_session_and_token_at_sign_in(steward_settings):
    anonymous = client(steward_settings)
    before = csrf_of(anonymous)
    sign_in(anonymous, "ann")
    assert csrf_of(anonymous) != before  # a token seen before sign-in is worth nothing after


def test_login_is_rate_limited_per_user_and_client(steward_settings):
    now = [1_800_000_000.0]
    anonymous = client(steward_settings, clock=lambda: now[0])
    token = csrf_of(anonymous)
    for _ in range(5):
        bad = anonymous.post(
            "/login", data={"username": "ann", "password": "bad", "csrf_token": token}
        )
        assert bad.status_code == 401
    limited = anonymous.post(
        "/login", data={"username": "ann", "password": PASSWORD, "csrf_token": token}
    )
    assert limited.status_code == 429  # even the right password, until the window passes
    assert int(limited.headers["Retry-After"]) > 0
    # the same client trying another user is limited too (failures per client)
    other = anonymous.post(
        "/login", data={"username": "vic", "password": PASSWORD, "csrf_token": token}
    )
    assert other.status_code == 429
    now[0] += 16 * 60
    sign_in(anonymous, "ann")
    actions = [e["action"] for e in store.audit_entries(_store(steward_settings))]
    assert "login_limited" in actions


def test_a_session_ends_after_its_hours_and_when_the_role_changes(steward_settings):
    from custpipe.steward.config import load_steward_config, save_user, users_path
    from custpipe_tests.steward.conftest import _FAST

    now = [1_800_000_000.0]
    session = client(steward_settings, "steward", clock=lambda: now[0])
    assert session.get("/golden").status_code == 200
    now[0] += 9 * 3600  # the default session lasts 8 hours
    assert session.get("/golden").status_code == 303

    now[0] = 1_800_000_000.0
    session = client(steward_settings, "steward", clock=lambda: now[0])
    path = users_path(steward_settings, load_steward_config(steward_settings))
    save_user(path, "ann", "viewer", _FAST.hash(PASSWORD))
    time.sleep(0.01)
    assert session.get("/golden").status_code == 303  # demoted: signed out


def test_remote_user_header_is_honoured_only_from_a_trusted_proxy(steward_settings):
    from custpipe.steward.config import StewardConfig

    proxied = StewardConfig(auth="remote_user", trusted_proxies=("10.1.2.0/24",))
    behind = client(steward_settings, peer="10.1.2.3", steward_config=proxied)
    assert behind.get("/golden", headers={"X-Remote-User": "ann"}).status_code == 200
    assert behind.get("/golden", headers={"X-Remote-User": "mallory"}).status_code == 303
    assert behind.get("/golden").status_code == 303
    direct = client(steward_settings, peer="192.0.2.7", steward_config=proxied)
    assert direct.get("/golden", headers={"X-Remote-User": "ann"}).status_code == 303
    # and no password sign-in beside the proxy
    refused = direct.post(
        "/login",
        data={"username": "ann", "password": PASSWORD, "csrf_token": csrf_of(direct)},
    )
    assert refused.status_code == 400


# -- roles ----------------------------------------------------------------------------------


def test_roles_guard_forms_and_pages(demo_run):
    settings = demo_run[0].settings
    viewer, steward, admin = (client(settings, r) for r in ("viewer", "steward", "admin"))
    group = _first_group(steward)
    for session, allowed in ((viewer, False), (steward, True)):
        response = session.post(
            f"{group}/decide",
            data={"decision": "cannot_link", "reason": "", "csrf_token": csrf_of(session)},
        )
        assert (response.status_code == 403) is not allowed
        if allowed:
            assert response.status_code == 400  # a reason is required: nothing recorded
    assert viewer.get("/quarantine/crm/export.csv").status_code == 403
    assert steward.get("/audit").status_code == 403
    assert admin.get("/audit").status_code == 200
    assert store.decisions(_store(settings)).empty


# -- values only for stewards -----------------------------------------------------------------

VALUE_COLUMNS = (
    "name",
    "given_name",
    "family_name",
    "tax_id",
    "national_id",
    "email",
    "phone",
    "street",
    "birth_date",
)


def _crawl(session, start: list[str], limit: int = 150) -> dict[str, str]:
    """url -> body of every same-site page reachable by links from `start`."""
    seen: dict[str, str] = {}
    todo = list(start)
    while todo and len(seen) < limit:
        url = todo.pop(0)
        if url in seen:
            continue
        response = session.get(url)
        assert response.status_code in (200, 403), (url, response.status_code)
        seen[url] = response.text
        if "text/html" not in response.headers.get("content-type", ""):
            continue
        for href in re.findall(r'href="([^"]+)"', response.text):
            target = urlsplit(href)
            if target.netloc or not href.startswith("/") or href.startswith("/static/"):
                continue
            if href == "/":  # the brand link: a redirect to the inbox, which is crawled
                continue
            if href not in seen and href not in todo:
                todo.append(href)
    return seen


def _value_tokens(settings) -> set[str]:
    """Every customer value of the staged records (6 characters or more, to avoid matching
    country codes or digits of counts): each is a canary no viewer page may contain — except
    a value that is also a word of the suites' rule texts, which every role reads on the
    Rules pages (a family name 'Steuer' is in the description's 'Steuernummer')."""
    rule_texts = "".join(
        p.read_text(encoding="utf-8") for p in settings.expectations_dir.glob("*.json")
    )
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tokens = set()
        for column in VALUE_COLUMNS:
            rows = con.execute(
                f"SELECT DISTINCT CAST({column} AS VARCHAR) FROM staging.customers "
                f"WHERE {column} IS NOT NULL"
            ).fetchall()
            tokens |= {r[0] for r in rows if len(r[0]) >= 6 and r[0] not in rule_texts}
        return tokens
    finally:
        con.close()


def test_a_viewer_never_receives_a_customer_value(demo_run):
    import html

    settings = demo_run[0].settings
    steward, viewer = client(settings, "steward"), client(settings, "viewer")
    tokens = _value_tokens(settings)
    golden = _first_golden_with_members(settings)
    start = ["/inbox", "/golden", f"/golden/{golden}", "/quarantine", "/rules", "/scorecard"]
    steward_pages = _crawl(steward, start)
    assert any(p.startswith("/review/") for p in steward_pages)
    assert any(p.startswith("/quarantine/") for p in steward_pages)
    shown = {t for body in steward_pages.values() for t in tokens if t in html.unescape(body)}
    assert len(shown) > 20, "the crawl must reach pages that show values to a steward"

    # the viewer opens the same pages, and searches with values: none may come back
    with_searches = list(steward_pages) + [f"/golden?q={quote(t)}" for t in sorted(shown)[:20]]
    for url in with_searches:
        response = viewer.get(url)
        body = html.unescape(response.text) + str(response.headers)
        typed = parse_qs(urlsplit(url).query).get("q", [""])[0]
        if typed:  # the search box shows back what the viewer typed: that is no leak
            assert body.count(f'value="{typed}"') == 1
            body = body.replace(f'value="{typed}"', "")
        leaked = {t for t in shown if t in body}
        assert not leaked, f"{url} shows a viewer customer values"
    value = sorted(shown)[0]
    assert value in html.unescape(steward.get(f"/golden?q={quote(value)}").text)


# -- CSRF -------------------------------------------------------------------------------------


def _post_routes(app) -> list[str]:
    return [r.path for r in app.routes if "POST" in (getattr(r, "methods", None) or ())]


def test_every_route_is_guarded(steward_settings):
    session = client(steward_settings)
    public = {"/", "/login", "/static"}
    for route in session.app.routes:
        if getattr(route, "path", "") in public:
            continue
        guard = getattr(route.endpoint, "steward_guard", None)
        assert guard is not None, f"{route.path} has no page() or form_post() guard"
        if "POST" in route.methods:
            assert guard[0] == "form_post", route.path


def test_every_form_rejects_a_missing_wrong_foreign_or_cross_site_token(demo_run):
    settings = demo_run[0].settings
    steward, other = client(settings, "steward"), client(settings, "steward")
    group = _first_group(steward)
    golden = _first_golden_with_members(settings)
    filled = {
        "/login": {"username": "ann", "password": PASSWORD},
        "/logout": {},
        "/review/{a}/{b}/decide": {"decision": "cannot_link", "reason": "csrf test"},
        "/golden/{golden_id}/split": {"record": "x:y", "reason": "csrf test"},
    }
    urls = {
        "/review/{a}/{b}/decide": f"{group}/decide",
        "/golden/{golden_id}/split": f"/golden/{golden}/split",
    }
    paths = _post_routes(steward.app)
    assert set(paths) == set(filled), "a new form: add it to this test"
    mine, theirs = csrf_of(steward), csrf_of(other)
    assert mine != theirs
    for path in paths:
        url = urls.get(path, path)
        data = filled[path]
        cases = {
            "missing": (data, {}),
            "wrong": (data | {"csrf_token": "x" * 43}, {}),
            "non-ASCII": (data | {"csrf_token": "é" * 43}, {}),
            "another session's": (data | {"csrf_token": theirs}, {}),
            "cross-site origin": (data | {"csrf_token": mine}, {"Origin": "https://evil.example"}),
            "cross-site fetch": (data | {"csrf_token": mine}, {"Sec-Fetch-Site": "cross-site"}),
        }
        for case, (form, headers) in cases.items():
            response = steward.post(url, data=form, headers=headers)
            assert response.status_code == 403, f"{path}: {case} token accepted"
    assert store.decisions(_store(settings)).empty
    assert steward.get("/golden").status_code == 200  # still signed in: logout was refused


# -- decisions --------------------------------------------------------------------------------


def test_a_decision_is_audited_and_leaves_the_inbox(demo_copy):
    settings = demo_copy[0].settings
    steward = client(settings, "steward")
    inbox = steward.get("/inbox").text
    group = _first_group(steward)
    pairs = steward.get(group).text
    decided = steward.post(
        f"{group}/decide",
        data={
            "decision": "cannot_link",
            "reason": "different tax ID, confirmed by phone",
            "csrf_token": csrf_of(steward),
        },
    )
    assert decided.status_code == 303 and decided.headers["location"] == "/inbox"
    after = steward.get("/inbox").text
    assert f'href="{group}"' in inbox and f'href="{group}"' not in after
    assert "recorded" in after  # the notice
    rows = store.decisions(_store(settings)).to_dict("records")
    assert rows and {r["kind"] for r in rows} == {"cannot_link"}
    assert {r["decided_by"] for r in rows} == {"ann"}
    assert {r["reason"] for r in rows} == {"different tax ID, confirmed by phone"}
    for r in rows:
        assert r["left_record"] in pairs and r["right_record"] in pairs
    audited = [e for e in store.audit_entries(_store(settings)) if e["action"] == "decide"]
    assert len(audited) == len(rows) and {e["actor"] for e in audited} == {"ann"}


def test_decisions_and_an_unmerge_from_the_workbench_are_honoured_by_the_next_run(demo_copy):
    deployment, instance, _ = demo_copy
    settings = deployment.settings
    steward = client(settings, "steward")
    group = _first_group(steward)
    a, b = group.split("/")[2:4]
    must = steward.post(
        f"{group}/decide",
        data={"decision": "must_link", "reason": "same customer", "csrf_token": csrf_of(steward)},
    )
    assert must.status_code == 303
    records_of_group = _members(settings, a) + _members(settings, b)
    golden = _first_golden_with_members(settings, exclude={a, b})
    members = _members(settings, golden)
    leaving = members[-1]
    split = steward.post(
        f"/golden/{golden}/split",
        data={"record": leaving, "reason": "another customer", "csrf_token": csrf_of(steward)},
    )
    assert split.status_code == 303
    assert "split recorded" in steward.get(f"/golden/{golden}").text

    result = run_nightly(settings, instance)
    assert result.success

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        review = con.execute(
            "SELECT count(*) FROM mdm.match_review r JOIN mdm.customer_xref xl "
            "ON xl.source_system = r.left_source_system AND xl.source_id = r.left_source_id "
            "JOIN mdm.customer_xref xr "
            "ON xr.source_system = r.right_source_system AND xr.source_id = r.right_source_id "
            "WHERE xl.golden_id IN (?, ?) OR xr.golden_id IN (?, ?)",
            [a, b, a, b],
        ).fetchone()[0]
        assert review == 0  # the group left the queue
        merged = con.execute(
            "SELECT count(DISTINCT golden_id) FROM mdm.customer_xref WHERE "
            "source_system || ':' || source_id IN (SELECT unnest(?))",
            [records_of_group],
        ).fetchone()[0]
        assert merged == 1  # must-link: one customer
        xref = dict(
            con.execute(
                "SELECT source_system || ':' || source_id, golden_id FROM mdm.customer_xref "
                "WHERE source_system || ':' || source_id IN (SELECT unnest(?))",
                [members],
            ).fetchall()
        )
        assert xref[leaving] != golden
        assert all(xref[m] == golden for m in members if m != leaving)
        events = con.execute(
            "SELECT event FROM mdm.golden_id_history WHERE golden_id = ? OR related_golden_id = ?",
            [golden, golden],
        ).fetchall()
        assert ("split",) in events
    finally:
        con.close()
    assert "split recorded" not in steward.get(f"/golden/{golden}").text


# -- the warehouse is never held --------------------------------------------------------------

_HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def test_pages_answer_503_while_a_run_writes_and_hold_nothing_after(demo_copy):
    settings = demo_copy[0].settings
    steward = client(settings, "steward")
    assert steward.get("/inbox").status_code == 200
    # the app keeps no connection between requests: a writer gets the file at once
    writer = duckdb.connect(str(settings.warehouse_path))
    writer.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(settings.warehouse_path), "30"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        busy = steward.get("/inbox")
        assert busy.status_code == 503 and "nightly run is writing" in busy.text
        assert busy.headers["Retry-After"]
        assert time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()
    assert steward.get("/inbox").status_code == 200


def test_no_warehouse_yet_is_explained(steward_settings):
    page = client(steward_settings, "steward").get("/inbox")
    assert page.status_code == 503 and "No nightly run yet" in page.text


def test_pages_carry_a_strict_content_security_policy(steward_settings):
    page = client(steward_settings).get("/login")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith(("/", "data:")), f"{src}: every asset is served locally"


# -- helpers ----------------------------------------------------------------------------------


def _store(settings):
    return store.store_path(settings)


def _first_group(session) -> str:
    page = session.get("/inbox")
    found = re.findall(r'href="(/review/[^"]+)"', page.text)
    assert found, f"the demo deployment has pairs to review: {page.status_code} {page.text[-3000:]}"
    return found[0]


def _first_golden_with_members(settings, exclude: set[str] = frozenset()) -> str:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        rows = con.execute(
            "SELECT golden_id FROM mdm.golden_customers WHERE member_count >= 3 "
            "ORDER BY golden_id LIMIT 20"
        ).fetchall()
    finally:
        con.close()
    return next(r[0] for r in rows if r[0] not in exclude)


def _members(settings, golden: str) -> list[str]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return [
            r[0]
            for r in con.execute(
                "SELECT source_system || ':' || source_id FROM mdm.customer_xref "
                "WHERE golden_id = ? ORDER BY 1",
                [golden],
            ).fetchall()
        ]
    finally:
        con.close()


def test_the_session_cookie_is_secure_behind_https(steward_settings):
    from custpipe.steward.config import StewardConfig

    behind_proxy = client(steward_settings, steward_config=StewardConfig(secure_cookies=True))
    login = behind_proxy.get("/login")
    assert "secure" in login.headers["set-cookie"].lower()


def test_a_users_file_broken_by_an_edit_keeps_the_users_read_before(steward_settings, caplog):
    from custpipe.steward.config import load_steward_config, users_path

    session = client(steward_settings, "steward")
    path = users_path(steward_settings, load_steward_config(steward_settings))
    good = path.read_text()
    path.write_text(good.replace("role: steward", "role: superuser"))
    assert session.get("/golden").status_code == 200  # still signed in
    assert "users.yaml" in caplog.text and "superuser" in caplog.text
    path.write_text(good.replace("role: steward", "role: viewer"))
    assert session.get("/golden").status_code == 303  # a valid change applies at once
