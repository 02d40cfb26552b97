"""End-to-end browser test: Chromium -> dashgate -> unmodified Dash app.

Run (from the repo root, after `cargo build`):

    python3 -m venv /tmp/venv-browser
    /tmp/venv-browser/bin/pip install -r tests/browser/requirements.txt
    /tmp/venv-browser/bin/python -m pytest tests/browser -v -p no:dash

(`-p no:dash` only silences a deprecation warning from dash's own pytest plugin.)
Set DASHGATE_BIN to test another binary, KEEP_TMP=1 to keep the temp dir with the
gateway and app logs.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20  # seconds; every wait below is a deadline, not a sleep

ACCESS = "dashgate-access"
REFRESH = "dashgate-refresh"
CSRF = "_csrf_token"


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def path_of(url: str) -> str:
    return urlsplit(url).path


def wait_for_path(driver, path: str) -> None:
    WebDriverWait(driver, WAIT).until(
        lambda d: path_of(d.current_url) == path,
        message=f"expected to reach {path}",
    )


def cookie_map(cookies: list[dict]) -> dict[str, dict]:
    return {c["name"]: c for c in cookies}


def cookie_header(cookies: list[dict], names: tuple[str, ...] | None = None) -> str:
    return "; ".join(f"{c['name']}={c['value']}" for c in cookies if names is None or c["name"] in names)


def set_cookie_headers(resp: requests.Response) -> list[str]:
    return list(resp.raw.headers.getlist("Set-Cookie")) if resp.raw is not None else []


def issued_cookie(resp: requests.Response, name: str) -> bool:
    """True if the response sets `name` to a non-empty value that is not an expiry."""
    for header in set_cookie_headers(resp):
        first, _, attrs = header.partition(";")
        cname, _, value = first.strip().partition("=")
        if cname != name:
            continue
        attrs_l = attrs.lower().replace(" ", "")
        if value and "max-age=0" not in attrs_l and "expires=thu,01jan1970" not in attrs_l:
            return True
    return False


def login_via_browser(driver, base: str, username: str, password: str) -> None:
    """Navigate to / unauthenticated, get sent to the login page, sign in."""
    driver.get(base + "/")
    wait_for_path(driver, "/auth/login")
    query = parse_qs(urlsplit(driver.current_url).query)
    assert query.get("next") == ["/"], f"login redirect should carry next=/ : {driver.current_url}"

    wait = WebDriverWait(driver, WAIT)
    user_box = wait.until(EC.visibility_of_element_located((By.ID, "username")))
    pass_box = driver.find_element(By.ID, "password")
    assert pass_box.get_attribute("type") == "password"
    form = driver.find_element(By.TAG_NAME, "form")
    assert (form.get_attribute("method") or "").lower() == "post"
    assert driver.find_element(By.CSS_SELECTOR, "input[name=csrf_token]").get_attribute("value")
    assert driver.find_element(By.CSS_SELECTOR, "input[name=next]").get_attribute("value") == "/"

    user_box.clear()
    user_box.send_keys(username)
    pass_box.clear()
    pass_box.send_keys(password)
    driver.find_element(By.ID, "sign-in").click()


def wait_dashboard(driver, username: str) -> None:
    wait_for_path(driver, "/")
    WebDriverWait(driver, WAIT).until(
        EC.text_to_be_present_in_element((By.ID, "whoami"), username),
        message=f"Dash layout with #whoami containing {username!r} did not render",
    )
    # The app uses Dash Pages: the dashboard's content arrives with the Pages callback,
    # after the frame that holds #whoami.
    WebDriverWait(driver, WAIT).until(
        EC.element_to_be_clickable((By.ID, "run")),
        message="the dashboard page (Dash Pages content with #run) did not render",
    )


class _FormInputs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.error_elements = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "input" and a.get("name"):
            self.inputs[a["name"]] = a.get("value") or ""
        if "error" in (a.get("class") or "").split():
            self.error_elements += 1


def parse_page(html: str) -> _FormInputs:
    p = _FormInputs()
    p.feed(html)
    return p


# ---------------------------------------------------------------------------
# a) viewer: login, callback through the gateway, logout revokes the cookies
# ---------------------------------------------------------------------------


def test_viewer_login_callback_logout_revokes_cookies(gateway, driver):
    base = gateway.url
    login_via_browser(driver, base, "viewer", gateway.passwords["viewer"])
    wait_dashboard(driver, "viewer")

    assert "viewer" in driver.find_element(By.ID, "whoami").text
    roles_text = driver.find_element(By.ID, "roles").text
    assert "viewer" in roles_text and "admin" not in roles_text, roles_text

    # Server callback: POST /_dash-update-component through the gateway (CSRF header
    # sent by dash-renderer); the app reads the username from that request's headers.
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, WAIT).until(
        EC.text_to_be_present_in_element((By.ID, "result"), "Run 1 by viewer"),
        message="callback result did not arrive through the gateway",
    )
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, WAIT).until(EC.text_to_be_present_in_element((By.ID, "result"), "Run 2 by viewer"))

    # No admin panel for a viewer, neither rendered nor anywhere in the page source.
    assert driver.find_elements(By.ID, "admin-panel") == []
    assert "admin-panel" not in driver.page_source

    # Gateway cookies (cookie_secure=false: no __Host- prefix).
    old_cookies = driver.get_cookies()
    cm = cookie_map(old_cookies)
    for name in (ACCESS, REFRESH, CSRF):
        assert name in cm, f"cookie {name} missing; got {sorted(cm)}"
    assert cm[ACCESS]["httpOnly"] is True
    assert cm[REFRESH]["httpOnly"] is True
    assert cm[CSRF]["httpOnly"] is False, "dash-renderer must be able to read _csrf_token"
    assert not any(n.startswith("__Host-") for n in cm), "no __Host- cookies expected with cookie_secure=false"

    all_cookies = cookie_header(old_cookies)
    csrf_value = cm[CSRF]["value"]
    json_headers = {"Accept": "application/json", "X-CSRFToken": csrf_value}

    # Positive control: the same cookies work outside the browser before logout...
    r = requests.get(base + "/_dash-layout", headers={**json_headers, "Cookie": all_cookies}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert "Signed in as viewer" in r.text

    # ...and client-sent identity headers are replaced by the gateway's.
    r = requests.get(
        base + "/_dash-layout",
        headers={
            **json_headers,
            "Cookie": all_cookies,
            "X-Forwarded-User": "admin",
            "X-Forwarded-Roles": "admin",
            "x_forwarded_user": "admin",
        },
        timeout=10,
    )
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert "Signed in as viewer" in r.text and "admin-panel" not in r.text, "spoofed identity headers reached the app"

    # Logout: link -> confirmation page -> POST -> 303 -> login page.
    driver.find_element(By.ID, "logout").click()
    wait_for_path(driver, "/auth/logout")
    confirm = WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "confirm-logout")))
    confirm.click()
    wait_for_path(driver, "/auth/login")
    left = cookie_map(driver.get_cookies())
    assert ACCESS not in left and REFRESH not in left, f"session cookies survived logout: {sorted(left)}"

    # The browser is logged out: / sends it to the login page again.
    driver.get(base + "/")
    wait_for_path(driver, "/auth/login")

    # The OLD cookies must no longer work (refresh family revoked, access jti blocked).
    nav = requests.get(
        base + "/",
        headers={"Accept": "text/html", "Cookie": all_cookies},
        allow_redirects=False,
        timeout=10,
    )
    assert nav.status_code == 302, (nav.status_code, nav.headers, nav.text[:500])
    loc = urljoin(base + "/", nav.headers.get("Location", ""))
    assert path_of(loc) == "/auth/login", loc
    assert not issued_cookie(nav, ACCESS), f"revoked refresh token minted a new session: {set_cookie_headers(nav)}"

    xhr = requests.get(
        base + "/_dash-layout",
        headers={**json_headers, "Cookie": all_cookies},
        allow_redirects=False,
        timeout=10,
    )
    assert xhr.status_code == 401, (xhr.status_code, xhr.text[:500])
    assert "Signed in as" not in xhr.text
    assert not issued_cookie(xhr, ACCESS), set_cookie_headers(xhr)

    # Each old cookie on its own: the still-unexpired access JWT is blocklisted,
    # and the rotated-out refresh token cannot start a new session.
    only_access = requests.get(
        base + "/_dash-layout",
        headers={**json_headers, "Cookie": cookie_header(old_cookies, (ACCESS, CSRF))},
        allow_redirects=False,
        timeout=10,
    )
    assert only_access.status_code == 401, ("old access token accepted", only_access.status_code, only_access.text[:300])
    only_refresh = requests.get(
        base + "/_dash-layout",
        headers={**json_headers, "Cookie": cookie_header(old_cookies, (REFRESH, CSRF))},
        allow_redirects=False,
        timeout=10,
    )
    assert only_refresh.status_code == 401, ("old refresh token accepted", only_refresh.status_code, only_refresh.text[:300])
    assert not issued_cookie(only_refresh, ACCESS), set_cookie_headers(only_refresh)

    # A callback POST with the old cookies is refused as well.
    cb = requests.post(
        base + "/_dash-update-component",
        headers={**json_headers, "Cookie": all_cookies, "Content-Type": "application/json"},
        json={
            "output": "result.children",
            "outputs": {"id": "result", "property": "children"},
            "inputs": [{"id": "run", "property": "n_clicks", "value": 7}],
            "state": [],
            "changedPropIds": ["run.n_clicks"],
        },
        allow_redirects=False,
        timeout=10,
    )
    assert cb.status_code == 401, (cb.status_code, cb.text[:300])
    assert "Run 7" not in cb.text


# ---------------------------------------------------------------------------
# b) admin sees the admin panel
# ---------------------------------------------------------------------------


def test_admin_sees_admin_panel(gateway, driver):
    login_via_browser(driver, gateway.url, "admin", gateway.passwords["admin"])
    wait_dashboard(driver, "admin")

    panel = WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "admin-panel")))
    assert "Administration" in panel.text
    assert "admin" in driver.find_element(By.ID, "roles").text

    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, WAIT).until(EC.text_to_be_present_in_element((By.ID, "result"), "Run 1 by admin"))


# ---------------------------------------------------------------------------
# c) wrong password: stays on the login page with an error, no session
# ---------------------------------------------------------------------------


def test_wrong_password_is_rejected(gateway, driver):
    login_via_browser(driver, gateway.url, "viewer", gateway.passwords["viewer"] + "-wrong")

    error = WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.CSS_SELECTOR, ".error")))
    assert error.text.strip(), "error element is empty"
    assert path_of(driver.current_url) == "/auth/login"
    assert driver.find_elements(By.ID, "whoami") == []
    names = set(cookie_map(driver.get_cookies()))
    assert ACCESS not in names and REFRESH not in names, f"session cookies set after a failed login: {names}"

    # The same at the HTTP level: 401, page re-rendered with .error, no session cookie,
    # and the same answer for an unknown user.
    for username, password in (("viewer", "definitely-not-the-password"), ("nobody-such-user", "x" * 12)):
        s = requests.Session()
        page = s.get(gateway.url + "/auth/login?next=%2F", headers={"Accept": "text/html"}, timeout=10)
        assert page.status_code == 200, page.status_code
        fields = parse_page(page.text).inputs
        assert {"username", "password", "csrf_token", "next"} <= set(fields), fields
        r = s.post(
            gateway.url + "/auth/login",
            data={"username": username, "password": password, "csrf_token": fields["csrf_token"], "next": "/"},
            headers={"Accept": "text/html"},
            allow_redirects=False,
            timeout=10,
        )
        assert r.status_code == 401, (username, r.status_code, r.text[:500])
        assert parse_page(r.text).error_elements >= 1, f"no .error element in the 401 page for {username}"
        assert not issued_cookie(r, ACCESS) and not issued_cookie(r, REFRESH), set_cookie_headers(r)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(pytest.main([__file__, "-v"]))
