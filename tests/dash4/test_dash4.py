"""Real Dash 4.4.1 apps behind the gateway, in Chromium and over raw WebSockets.

- ws_app.py runs every callback over Dash's WebSocket (`<prefix>_dash-ws-callback`, held by
  dash-renderer's SharedWorker): the gateway judges each `callback_request` frame against the
  policy, prunes hidden components out of what the app sends back, and closes the socket when
  the session ends (logout elsewhere, access-token expiry);
- csrf_app.py names its own CSRF cookie and header (`my_csrf` / `X-My-Csrf`): the gateway learns
  them from the app and hands the token out under that name;
- the gateway's sign-in page brings its own icon, so the browser never asks the app for
  /favicon.ico (a 401 in the console) while signing in.

Run from the repository root, after `cargo build`:

    scripts/venv tests/browser/requirements.txt
    DASHGATE_VENV=.venv-dash4 scripts/venv tests/dash/requirements-dash4.txt
    DASHGATE_BIN=$PWD/target/debug/dashgate .venv/bin/python -m pytest tests/dash4 -p no:dash -q
"""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from urllib.parse import urlsplit

import requests
import websocket  # websocket-client, which selenium depends on
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dash4_browser import WAIT, fill_login_form, sign_in, text_of, wait_for_path, wait_text, wait_until

# What ws_app.py writes (kept in step with it).
SALARY = "Salary of the CEO: 987,654 EUR"
SECRET_INLINE = "Inline secret: vault code 4711"
SECRET_PANEL = "Panel secret: launch code 0815"
# Anything of the hidden components a viewer's browser must never receive.
HIDDEN_MARKS = ("vault code", "launch code", "secret-inline", "secret-panel", "Inline secret", "Panel secret")
REFUSED = "request refused by policy"
SESSION_ENDED = "WebSocket closed: the session ended"
CLOSE_DEADLINE = 4.0  # seconds from a logout to the socket's close: the gateway promises ~2 s


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def open_dash_page(browser, site, user: str) -> str:
    """Sign in as `user`, wait for the Dash page and its WebSocket; the socket's DevTools id."""
    sign_in(browser.driver, site.url, user, site.passwords[user])
    wait_text(browser.driver, "public-out", "public: not yet")
    return wait_until("the renderer's WebSocket to open (101)", browser.sockets.opened)[-1]


def click_go(browser) -> None:
    browser.driver.find_element(By.ID, "go").click()


def app_messages(site, user: str) -> list[str]:
    """Outputs of the callback_requests the app received over WebSockets from `user`."""
    return [
        m["output"] for m in site.oracle("ws")["messages"] if m["user"] == user and m["type"] == "callback_request"
    ]


def console_has(browser, text: str) -> bool:
    return any(text in c["message"] for c in browser.page.console_messages())


class _Inputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.values[a["name"]] = a.get("value") or ""


def cookie_session(site, user: str) -> requests.Session:
    """A signed-in cookie session, through the login form as a browser posts it."""
    s = requests.Session()
    page = s.get(site.url + "/auth/login", params={"next": "/"}, timeout=30)
    assert page.status_code == 200, page.text[:300]
    form = _Inputs()
    form.feed(page.text)
    r = s.post(
        site.url + "/auth/login",
        data={"username": user, "password": site.passwords[user], "csrf_token": form.values["csrf_token"], "next": "/"},
        headers={"Origin": site.url},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303, (r.status_code, r.text[:300])
    return s


def cookie_header(session: requests.Session) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def ws_url(site) -> str:
    return "ws" + site.url[len("http") :] + "/_dash-ws-callback"


def handshake_status(site, cookie: str | None, origin: str | None) -> int:
    """The HTTP status the gateway answers a WebSocket handshake with (101: connected)."""
    kwargs = {"timeout": 10, "cookie": cookie}
    if origin is None:
        kwargs["suppress_origin"] = True
    else:
        kwargs["origin"] = origin
    try:
        conn = websocket.create_connection(ws_url(site), **kwargs)
    except websocket.WebSocketBadStatusException as e:
        return e.status_code
    conn.close()
    return 101


def callback_request(request_id: str, output: str) -> dict:
    """A callback_request as dash-renderer's worker sends it for a click on `go`."""
    return {
        "type": "callback_request",
        "rendererId": "raw-client",
        "requestId": request_id,
        "payload": {
            "output": f"{output}.children",
            "outputs": {"id": output, "property": "children"},
            "inputs": [{"id": "go", "property": "n_clicks", "value": 1}],
            "changedPropIds": ["go.n_clicks"],
        },
    }


def receive_until(conn, request_ids: set[str], timeout: float = WAIT) -> list[dict]:
    """Every message received until each of `request_ids` has its callback_response."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while request_ids - {m.get("requestId") for m in got if m.get("type") == "callback_response"}:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no answer to {request_ids} within {timeout}s; got {got}")
        conn.settimeout(left)
        value = json.loads(conn.recv())
        got += value if isinstance(value, list) else [value]
    return got


# ---------------------------------------------------------------------------
# the WebSocket app in Chromium
# ---------------------------------------------------------------------------


def test_admin_callbacks_run_over_the_websocket(ws_site, browser):
    d, sockets = browser.driver, browser.sockets
    socket = open_dash_page(browser, ws_site, "admin")

    click_go(browser)
    wait_text(d, "public-out", "public click 1")
    wait_text(d, "salary-out", SALARY)
    wait_text(d, "public-note", "note 1")
    wait_text(d, "secret-panel", SECRET_PANEL)  # a set_props message on the socket
    assert SECRET_INLINE in text_of(d, "secret-inline")

    # Both callbacks went over the socket and were answered there ...
    for output in ("public-out", "salary-out"):
        sent = sockets.callback_requests(output)
        assert [s for s, _ in sent] == [socket], f"one {output} callback_request on the socket: {sent}"
        answer = wait_until(f"the answer to {output}", lambda: sockets.response_to(sent[0][1]))
        assert answer["payload"]["status"] == "ok", answer
    # ... and not over HTTP.
    assert browser.page.posts_to("_dash-update-component") == []
    # The admin sees everything: the hidden components' content did travel on this socket.
    received = "".join(f.data for f in sockets.frames("received"))
    assert SECRET_PANEL in received and SECRET_INLINE in received and SALARY in received

    # The app saw the admin's handshake with the browser's Host and Origin, and both callbacks.
    host = urlsplit(ws_site.url).netloc
    handshakes = [h for h in ws_site.oracle("ws")["handshakes"] if h["host"] == host and h["user"] == "admin"]
    assert handshakes and all(h["origin"] == ws_site.url for h in handshakes), handshakes
    assert {"public-out.children", "salary-out.children"} <= set(app_messages(ws_site, "admin"))


def test_over_tls_the_page_speaks_http2_and_its_socket_is_judged_as_before(tls_site, browser):
    """With TLS, Chromium picks HTTP/2 for the page and its requests; Dash's callback socket
    (no extended CONNECT is offered, so its 101 can only come over an HTTP/1.1 connection of
    its own) carries the callbacks through the same relay."""
    d, sockets = browser.driver, browser.sockets
    socket = open_dash_page(browser, tls_site, "admin")
    protocols = d.execute_script(
        "return [performance.getEntriesByType('navigation')[0].nextHopProtocol]"
        ".concat(performance.getEntriesByType('resource').map(e => e.nextHopProtocol))"
    )
    assert protocols[0] == "h2", protocols
    assert "h2" in protocols[1:] and "http/1.1" not in protocols[1:], protocols
    click_go(browser)
    wait_text(d, "salary-out", SALARY)
    sent = sockets.callback_requests("salary-out")
    assert [s for s, _ in sent] == [socket], sent
    assert browser.page.posts_to("_dash-update-component") == []
    assert "salary-out.children" in app_messages(tls_site, "admin")


def test_viewer_is_refused_the_salary_and_never_receives_hidden_components(ws_site, browser):
    d, sockets = browser.driver, browser.sockets
    mark = ws_site.log_size()
    socket = open_dash_page(browser, ws_site, "viewer")
    assert d.find_elements(By.ID, "secret-panel") == [], "the viewer's layout lacks the hidden panel"
    before = app_messages(ws_site, "viewer")

    for n in (1, 2):  # the socket stays usable after a refusal
        click_go(browser)
        wait_text(d, "public-out", f"public click {n}")
        wait_text(d, "public-note", f"note {n}")  # set_props for a visible component come through
        sent = sockets.callback_requests("salary-out")
        assert len(sent) == n and sent[-1][0] == socket, sent
        answer = wait_until("the gateway's answer to the salary callback", lambda: sockets.response_to(sent[-1][1]))
        assert answer["payload"]["status"] == "error", answer
        assert answer["payload"]["message"].startswith("forbidden"), answer
        assert answer["rendererId"] == sent[-1][1]["rendererId"]
        assert text_of(d, "salary-out") == "salary: not yet"

    assert browser.page.posts_to("_dash-update-component") == [], "every callback went over the socket"
    # The refused callbacks never reached the app; the allowed ones did.
    new = app_messages(ws_site, "viewer")[len(before) :]
    assert new.count("public-out.children") == 2 and "salary-out.children" not in new, new
    wait_until("the refusals in the gateway's log", lambda: ws_site.log_since(mark).count(REFUSED) >= 2)
    refusals = [line for line in ws_site.log_since(mark).splitlines() if REFUSED in line]
    assert all('user="viewer"' in line for line in refusals), refusals

    # Nothing of the hidden components reached the browser: not the DOM, not a frame.
    received = sockets.frames("received")
    assert any("note 2" in f.data for f in received), "the frames were recorded"
    for f in received:
        for hidden in HIDDEN_MARKS:
            assert hidden not in f.data, f"{hidden!r} in a frame the viewer received: {f.data[:500]}"
    assert d.find_elements(By.ID, "secret-inline") == [] and d.find_elements(By.ID, "secret-panel") == []
    source = d.page_source
    for hidden in HIDDEN_MARKS:
        assert hidden not in source, f"{hidden!r} in the viewer's page"


def test_logout_in_another_tab_closes_the_socket_and_a_new_sign_in_reconnects(ws_site, browser):
    d, sockets = browser.driver, browser.sockets
    first = open_dash_page(browser, ws_site, "admin")
    click_go(browser)
    wait_text(d, "public-out", "public click 1")
    dash_tab = d.current_window_handle

    # Sign out in a second tab.
    mark = ws_site.log_size()
    d.switch_to.new_window("tab")
    d.get(ws_site.url + "/auth/logout")
    confirm = WebDriverWait(d, WAIT).until(EC.element_to_be_clickable((By.ID, "confirm-logout")))
    clicked = time.monotonic()
    confirm.click()
    wait_for_path(d, "/auth/login")
    closed_at = wait_until("the Dash tab's socket to close", lambda: sockets.closed().get(first), timeout=WAIT)
    assert closed_at - clicked < CLOSE_DEADLINE, f"the socket closed {closed_at - clicked:.1f}s after the logout"
    wait_until("the gateway to log why", lambda: SESSION_ENDED in ws_site.log_since(mark))
    d.switch_to.window(dash_tab)
    wait_until(
        "the renderer to hear the close reason",
        lambda: console_has(browser, "[Dash] WebSocket disconnected: session ended"),
    )

    # Callbacks stop working: the worker's new handshakes are refused (no session any more),
    # nothing reaches the app, the page does not change.
    seen_by_app = len(app_messages(ws_site, "admin"))
    failures = len(sockets.failures())
    click_go(browser)
    wait_until("a refused handshake after the click", lambda: len(sockets.failures()) > failures)
    assert [s for s in sockets.opened() if s != first] == [], "no socket opened without a session"
    assert text_of(d, "public-out").startswith("public click 1")
    assert len(app_messages(ws_site, "admin")) == seen_by_app

    # Sign in again (in the other tab, to a page that is not Dash's): the Dash tab's callbacks
    # work again, on a new socket.
    d.switch_to.window([h for h in d.window_handles if h != dash_tab][0])
    d.get(ws_site.url + "/auth/login?next=/_oracle/version")
    fill_login_form(d, "admin", ws_site.passwords["admin"])
    wait_for_path(d, "/_oracle/version")
    d.switch_to.window(dash_tab)
    click_go(browser)
    wait_text(d, "public-out", "public click 3")
    reopened = [s for s in sockets.opened() if s != first]
    assert reopened, "a new socket opened after the new sign-in"
    assert any(s in reopened for s, _ in sockets.callback_requests("public-out"))


def test_access_token_expiry_closes_the_socket_and_the_reconnect_refreshes_the_session(short_site, browser):
    """Access tokens of `short_site` live 30 s: the socket ends then, and the worker's next
    handshake (refresh cookie only, the access cookie has expired) refreshes the session."""
    d, sockets = browser.driver, browser.sockets
    mark = short_site.log_size()
    first = open_dash_page(browser, short_site, "admin")
    access = {c["name"]: c["value"] for c in d.get_cookies()}.get("dashgate-access")
    assert access, "signed in with an access cookie"
    click_go(browser)
    wait_text(d, "public-out", "public click 1")

    wait_until("the socket to close at the access token's expiry", lambda: sockets.closed().get(first), timeout=45)
    assert SESSION_ENDED in short_site.log_since(mark)
    second = wait_until(
        "the worker to reconnect by itself", lambda: [s for s in sockets.opened() if s != first], timeout=WAIT
    )[0]
    renewed = wait_until(
        "a new access cookie", lambda: {c["name"]: c["value"] for c in d.get_cookies()}.get("dashgate-access")
    )
    assert renewed != access, "the handshake refreshed the session"
    click_go(browser)
    wait_text(d, "public-out", "public click 2")
    assert sockets.callback_requests("public-out")[-1][0] == second


# ---------------------------------------------------------------------------
# the WebSocket handshake and frames, from a plain client
# ---------------------------------------------------------------------------


def test_the_handshake_needs_a_session_and_this_origin_and_frames_are_judged(ws_site):
    viewer = cookie_header(cookie_session(ws_site, "viewer"))
    handshakes = len(ws_site.oracle("ws")["handshakes"])
    assert handshake_status(ws_site, None, ws_site.url) == 401
    assert handshake_status(ws_site, viewer, "http://evil.example") == 403
    assert handshake_status(ws_site, viewer, None) == 403
    assert len(ws_site.oracle("ws")["handshakes"]) == handshakes, "refused handshakes never reach the app"

    conn = websocket.create_connection(ws_url(ws_site), cookie=viewer, origin=ws_site.url, timeout=10)
    try:
        before = app_messages(ws_site, "viewer")
        # Two callbacks in one frame: judged one by one.
        conn.send(json.dumps([callback_request("a", "salary-out"), callback_request("b", "public-out")]))
        got = receive_until(conn, {"a", "b"})
    finally:
        conn.close()
    answers = {m["requestId"]: m["payload"] for m in got if m.get("type") == "callback_response"}
    assert answers["a"]["status"] == "error" and answers["a"]["message"].startswith("forbidden"), answers
    assert answers["b"]["status"] == "ok" and "public click 1" in json.dumps(answers["b"]), answers
    text = json.dumps(got)
    assert all(hidden not in text for hidden in HIDDEN_MARKS), text
    new = app_messages(ws_site, "viewer")[len(before) :]
    assert new == ["public-out.children"], new


def test_logout_closes_the_socket_with_1008(ws_site):
    session = cookie_session(ws_site, "viewer")
    conn = websocket.create_connection(ws_url(ws_site), cookie=cookie_header(session), origin=ws_site.url, timeout=10)
    try:
        conn.send(json.dumps(callback_request("before", "public-out")))
        receive_until(conn, {"before"})  # the socket works
        out = session.post(
            ws_site.url + "/auth/logout",
            headers={"X-CSRFToken": session.cookies["_csrf_token"], "Origin": ws_site.url, "Accept": "application/json"},
            allow_redirects=False,
            timeout=30,
        )
        assert out.status_code in (200, 303), (out.status_code, out.text[:300])
        logged_out = time.monotonic()
        conn.settimeout(CLOSE_DEADLINE)
        opcode = None
        try:
            while opcode != websocket.ABNF.OPCODE_CLOSE:  # a late answer may come first
                opcode, data = conn.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            raise AssertionError(f"the socket was still open {CLOSE_DEADLINE}s after the logout") from None
        took = time.monotonic() - logged_out
    finally:
        conn.close()
    code = int.from_bytes(data[:2], "big")
    assert (code, data[2:]) == (1008, b"session ended"), data
    assert took < CLOSE_DEADLINE, f"closed {took:.1f}s after the logout"


# ---------------------------------------------------------------------------
# the Flask app with its own CSRF names
# ---------------------------------------------------------------------------


def test_custom_csrf_names_work_in_the_browser_and_are_enforced(csrf_site, browser):
    d = browser.driver
    sign_in(d, csrf_site.url, "viewer", csrf_site.passwords["viewer"])
    wait_text(d, "count-out", "count: not yet")
    assert "my_csrf" in browser.page.set_cookies("/_dash-layout"), "the layout's answer sets the app's CSRF cookie"
    cookies = {c["name"]: c["value"] for c in d.get_cookies()}
    assert cookies.get("my_csrf") and cookies.get("_csrf_token"), sorted(cookies)

    d.find_element(By.ID, "count").click()
    wait_text(d, "count-out", "count 1 by viewer")
    posts = browser.page.posts_to("/_dash-update-component")
    assert len(posts) == 1, posts
    sent = {k.lower(): v for k, v in posts[0]["request"]["headers"].items()}
    token = {c["name"]: c["value"] for c in d.get_cookies()}["my_csrf"]
    assert sent.get("x-my-csrf") == token, sent
    assert "x-csrftoken" not in sent

    # The same callback from outside the browser, with the browser's cookies.
    body = {
        "output": "count-out.children",
        "outputs": {"id": "count-out", "property": "children"},
        "inputs": [{"id": "count", "property": "n_clicks", "value": 7}],
        "state": [],
        "changedPropIds": ["count.n_clicks"],
    }
    jar = "; ".join(f"{c['name']}={c['value']}" for c in d.get_cookies())

    def post(**headers: str) -> requests.Response:
        h = {"Cookie": jar, "Origin": csrf_site.url, "Content-Type": "application/json", **headers}
        return requests.post(csrf_site.url + "/_dash-update-component", data=json.dumps(body), headers=h, timeout=30)

    ok = post(**{"X-My-Csrf": token})
    assert ok.status_code == 200 and "count 7 by viewer" in ok.text, (ok.status_code, ok.text[:300])
    wrong = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for headers in ({"X-My-Csrf": wrong}, {}):
        r = post(**headers)
        assert r.status_code == 403, (headers, r.status_code, r.text[:300])


# ---------------------------------------------------------------------------
# the sign-in page's icon
# ---------------------------------------------------------------------------


def test_signing_in_asks_the_app_for_no_favicon(ws_site, browser):
    d = browser.driver
    sign_in(d, ws_site.url, "viewer", ws_site.passwords["viewer"])
    wait_text(d, "public-out", "public: not yet")
    paths = [urlsplit(r["request"]["url"]).path for r in browser.page.requests() if r["request"]["url"].startswith(ws_site.url)]
    assert "/auth/login" in paths, paths
    console = browser.page.console_messages()
    assert [c for c in console if "favicon" in c["message"].lower() or c["level"] == "SEVERE"] == [], console
    assert "/favicon.ico" not in paths, "the browser asked for /favicon.ico while signing in"
    assert "/auth/assets/dashgate.svg" in paths, "the sign-in page's own icon"

    # The check can see such an error: signed out, a gateway page without the icon (JSON)
    # makes Chromium ask for /favicon.ico, which the gateway refuses (401) and the console shows.
    d.delete_all_cookies()
    d.get(ws_site.url + "/auth/healthz")
    wait_until(
        "Chromium's console to report the refused /favicon.ico",
        lambda: any(
            "/favicon.ico" in c["message"] and c["level"] == "SEVERE" for c in browser.page.console_messages()
        ),
    )
