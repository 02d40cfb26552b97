"""Role-based access end to end: Chromium -> dashgate (with examples/dash_app/policy.toml) -> Dash Pages app.

The policy lets only role `admin` reach `/admin` (as a page load and as Dash Pages
client-side navigation) and only permission `salaries:read` run the callback whose
output is `salary-table`. The example app uses dashgate_client for its role-aware
layout and shows on the admin page whether the gateway's signed assertion verified
against `/auth/jwks.json` (`identity-verified`).

Run like test_login_flow.py (see there), e.g.
    .venv/bin/python -m pytest tests/browser -p no:dash -q
"""

from __future__ import annotations

import base64
import json

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from dash_requests import PAGES_OUTPUT, pages_body
from test_login_flow import CSRF, WAIT, cookie_header, cookie_map, login_via_browser, path_of, wait_dashboard, wait_for_path

# Names in the app's salary table (examples/dash_app/app.py, SALARIES): none of them may
# ever reach a viewer, in any response.
EMPLOYEES = ["Ada Byrne", "Bruno Keller", "Chiara Moretti", "Dmitri Volkov", "Elif Demir", "Femi Adebayo", "Grete Lund"]



# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def assert_no_salary_data(text: str, where: str) -> None:
    leaked = [name for name in EMPLOYEES if name in text]
    assert not leaked, f"salary data ({leaked}) in {where}"


def signed_in(driver, gateway, username: str) -> None:
    login_via_browser(driver, gateway.url, username, gateway.passwords[username])
    wait_dashboard(driver, username)  # frame and the Pages content of /


class Session:
    """The browser's cookies, replayed with `requests` (+ X-CSRFToken as dash-renderer sends it)."""

    def __init__(self, base: str, cookies: list[dict]):
        self.base = base
        self.cookies = cookies
        self.csrf = cookie_map(cookies)[CSRF]["value"]

    def post_callback(self, body: dict, **extra_headers: str) -> requests.Response:
        return requests.post(
            self.base + "/_dash-update-component",
            data=json.dumps(body),
            headers={
                "Accept": "application/json",
                "Content-Type": "application/json",
                "X-CSRFToken": self.csrf,
                "Cookie": cookie_header(self.cookies),
                **extra_headers,
            },
            allow_redirects=False,
            timeout=10,
        )

    def get(self, path: str, accept: str = "text/html") -> requests.Response:
        return requests.get(
            self.base + path,
            headers={"Accept": accept, "Cookie": cookie_header(self.cookies)},
            allow_redirects=False,
            timeout=10,
        )


def session_of(driver, gateway, username: str) -> Session:
    signed_in(driver, gateway, username)
    return Session(gateway.url, driver.get_cookies())


def salary_body(department: str = "all") -> dict:
    return {
        "output": "salary-table.children",
        "outputs": {"id": "salary-table", "property": "children"},
        "inputs": [{"id": "department-filter", "property": "value", "value": department}],
        "state": [],
        "changedPropIds": ["department-filter.value"],
    }


def run_job_body(n: int) -> dict:
    return {
        "output": "result.children",
        "outputs": {"id": "result", "property": "children"},
        "inputs": [{"id": "run", "property": "n_clicks", "value": n}],
        "state": [],
        "changedPropIds": ["run.n_clicks"],
    }


# Records every _dash-update-component response the page receives (dash-renderer uses fetch).
RECORD_FETCH_JS = """
window.__dgCalls = [];
const origFetch = window.fetch;
window.fetch = function (input, init) {
    const url = typeof input === 'string' ? input : input.url;
    const body = init && typeof init.body === 'string' ? init.body : '';
    return origFetch.apply(this, arguments).then(function (resp) {
        if (url.indexOf('_dash-update-component') !== -1) {
            window.__dgCalls.push({url: url, status: resp.status, body: body});
        }
        return resp;
    });
};
"""


def navigate_client_side(driver, path: str) -> None:
    """What a dcc.Link does: push the URL; dcc.Location then sends the Pages callback."""
    driver.execute_script(
        "window.history.pushState({}, '', arguments[0]);"
        "window.dispatchEvent(new PopStateEvent('popstate', {state: {}}));",
        path,
    )


def wait_pages_calls(driver, pathname: str) -> list[dict]:
    """The recorded Dash Pages callbacks for `pathname` (waits for at least one)."""
    needle = json.dumps({"id": "_pages_location", "property": "pathname", "value": pathname}, separators=(",", ":"))

    def calls(d):
        recorded = d.execute_script("return window.__dgCalls") or []
        return [c for c in recorded if needle in c["body"]]

    return WebDriverWait(driver, WAIT).until(calls, message=f"no Dash Pages callback for {pathname} was answered")


# ---------------------------------------------------------------------------
# viewer
# ---------------------------------------------------------------------------


def test_viewer_sees_no_admin_link(gateway, driver):
    signed_in(driver, gateway, "viewer")
    assert driver.find_element(By.ID, "nav-home").is_displayed()
    assert driver.find_elements(By.ID, "nav-admin") == []
    source = driver.page_source
    assert "nav-admin" not in source and 'href="/admin"' not in source
    assert "salary-table" not in source
    assert_no_salary_data(source, "the viewer's dashboard")
    # The layout the app sends for the viewer has no admin link either.
    s = Session(gateway.url, driver.get_cookies())
    layout = s.get("/_dash-layout", accept="application/json")
    assert layout.status_code == 200, (layout.status_code, layout.text[:300])
    assert "nav-home" in layout.text and "nav-admin" not in layout.text


def test_viewer_opening_admin_gets_the_gateways_403_page(gateway, driver):
    s = session_of(driver, gateway, "viewer")

    r = s.get("/admin")
    assert r.status_code == 403, (r.status_code, r.headers, r.text[:500])
    assert r.headers.get("Content-Type", "").startswith("text/html"), r.headers
    assert "_dash-config" not in r.text and "react-entry-point" not in r.text, "the app's index page was served"
    assert_no_salary_data(r.text, "the 403 page")
    for path in ("/admin/", "/admin/anything", "//admin", "/admin?x=1", "/%61dmin", "/./admin", "/x/../admin"):
        r = s.get(path)
        assert r.status_code in (400, 403, 404), (path, r.status_code, r.text[:300])
        assert "react-entry-point" not in r.text, f"{path}: the app's index page was served to a viewer"

    # The same in the browser: the gateway's page, not the Dash app, and no redirect to login.
    driver.get(gateway.url + "/admin")
    WebDriverWait(driver, WAIT).until(lambda d: d.execute_script("return document.readyState") == "complete")
    assert path_of(driver.current_url) == "/admin"
    source = driver.page_source
    assert "react-entry-point" not in source and "salary-table" not in source
    assert_no_salary_data(source, "the browser's /admin page")
    assert driver.find_elements(By.ID, "whoami") == []


def test_viewer_client_side_navigation_to_admin_is_refused(gateway, driver):
    signed_in(driver, gateway, "viewer")
    driver.execute_script(RECORD_FETCH_JS)
    # What a dcc.Link to /admin does: push the URL, and dcc.Location reacts with the
    # Dash Pages callback POST (pathname /admin) - no GET of /admin.
    navigate_client_side(driver, "/admin")

    calls = wait_pages_calls(driver, "/admin")
    assert [c["status"] for c in calls] == [403], calls

    assert driver.find_elements(By.ID, "salary-table") == []
    assert driver.find_elements(By.ID, "admin-page") == []
    assert driver.find_elements(By.ID, "admin-denied") == [], "the request reached the app's admin page"
    assert_no_salary_data(driver.page_source, "the page after navigating to /admin")
    # The dashboard is still what the viewer sees, and still works.
    assert "viewer" in driver.find_element(By.ID, "whoami").text
    navigate_client_side(driver, "/")
    assert [c["status"] for c in wait_pages_calls(driver, "/")] == [200]
    WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "run"))).click()
    WebDriverWait(driver, WAIT).until(EC.text_to_be_present_in_element((By.ID, "result"), "by viewer"))


def test_viewer_cannot_run_the_salary_callback(gateway, driver):
    s = session_of(driver, gateway, "viewer")

    # Control: the same cookies and CSRF header run an ordinary callback.
    ok = s.post_callback(run_job_body(5))
    assert ok.status_code == 200, (ok.status_code, ok.text[:300])
    assert "Run 5 by viewer" in ok.text

    r = s.post_callback(salary_body())
    assert r.status_code == 403, (r.status_code, r.text[:500])
    assert_no_salary_data(r.text, "the 403 answer")

    # Self-made identity headers change nothing (the gateway strips them).
    r = s.post_callback(
        salary_body(),
        **{
            "X-Forwarded-User": "admin",
            "X-Forwarded-Roles": "admin",
            "X-Forwarded-Permissions": "salaries:read",
            "X-Dashgate-Assertion": "x.y.z",
        },
    )
    assert r.status_code == 403, (r.status_code, r.text[:500])
    assert_no_salary_data(r.text, "the 403 answer with forged headers")


@pytest.mark.parametrize(
    "pathname,labels",
    [
        ("/admin", ("pathname", "search")),
        # Dash strips leading/trailing slashes before matching a page: all of these are /admin
        # to Dash. The gateway refuses empty segments as malformed (400): no browser sends them.
        ("/admin/", ("pathname", "search")),
        ("//admin", ("pathname", "search")),
        ("/admin//", ("pathname", "search")),
        ("///admin///", ("pathname", "search")),
        # Dash takes callback inputs by position and ignores the property names in the
        # body: the first input is the pathname whatever it is labelled.
        ("/admin", ("search", "pathname")),
        ("/admin", ("href", "hash")),
    ],
)
def test_viewer_cannot_reach_the_admin_page_through_the_pages_callback(gateway, driver, pathname, labels):
    s = session_of(driver, gateway, "viewer")
    body = pages_body(pathname, labels=labels)
    if labels != ("pathname", "search"):
        # the second input's value must not be mistaken for the pathname either
        body["inputs"][1]["value"] = "/"
    r = s.post_callback(body)
    # 403 from the gateway; "admin-denied" would mean the app's own check had to refuse it.
    assert "admin-denied" not in r.text and "admin-page" not in r.text, (pathname, labels, r.status_code, r.text[:300])
    assert_no_salary_data(r.text, f"the Pages callback for {pathname!r}")
    expected = 400 if "//" in pathname else 403
    assert r.status_code == expected, (pathname, labels, r.status_code, r.text[:300])


# ---------------------------------------------------------------------------
# admin
# ---------------------------------------------------------------------------


def salary_rows(driver) -> list[str]:
    # One script call: the table may be re-rendered between element look-ups.
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#salary-table tbody tr')).map(tr => tr.innerText);"
    )


def test_admin_navigates_to_the_admin_page_and_sees_salaries(gateway, driver):
    signed_in(driver, gateway, "admin")
    driver.execute_script(RECORD_FETCH_JS)
    link = WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "nav-admin")))
    link.click()
    wait_for_path(driver, "/admin")
    WebDriverWait(driver, WAIT).until(
        lambda d: len(salary_rows(d)) == len(EMPLOYEES), message="salary table rows did not arrive"
    )
    rows = salary_rows(driver)
    assert any("Ada Byrne" in row and "128,000" in row for row in rows), rows
    assert driver.find_element(By.ID, "identity-verified").text == "verified"
    # Client-side navigation: Dash Pages callback + salary callback, both allowed; no page load.
    calls = driver.execute_script("return window.__dgCalls")
    assert calls and all(c["status"] == 200 for c in calls), calls
    assert any("_pages_location" in c["body"] for c in calls) and any("salary-table" in c["body"] for c in calls), calls

    # The filter runs the protected callback again through the gateway.
    driver.find_element(By.CSS_SELECTOR, "#department-filter input[value='Sales']").click()
    WebDriverWait(driver, WAIT).until(lambda d: len(salary_rows(d)) == 2, message="filtered rows did not arrive")
    assert all("Sales" in row for row in salary_rows(driver))

    # And back to the dashboard.
    driver.find_element(By.ID, "nav-home").click()
    wait_for_path(driver, "/")
    WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "run"))).click()
    WebDriverWait(driver, WAIT).until(EC.text_to_be_present_in_element((By.ID, "result"), "by admin"))
    assert driver.find_elements(By.ID, "salary-table") == []


def test_admin_opens_admin_directly(gateway, driver):
    signed_in(driver, gateway, "admin")
    driver.get(gateway.url + "/admin")
    WebDriverWait(driver, WAIT).until(
        lambda d: len(salary_rows(d)) == len(EMPLOYEES), message="salary table rows did not arrive"
    )
    assert "admin" in driver.find_element(By.ID, "whoami").text
    # Control for the viewer test: the same hand-made POST works with the admin's cookies.
    s = Session(gateway.url, driver.get_cookies())
    r = s.post_callback(salary_body("Finance"))
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert "Femi Adebayo" in r.text and "Ada Byrne" not in r.text
    r = s.post_callback(pages_body("/admin"))
    assert r.status_code == 200 and "admin-page" in r.text, (r.status_code, r.text[:300])


# ---------------------------------------------------------------------------
# the app can verify who the gateway says the user is
# ---------------------------------------------------------------------------


def _b64url_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_jwks_is_published_and_the_app_verifies_the_assertion(gateway, driver):
    r = requests.get(gateway.jwks_url, headers={"Accept": "application/json"}, timeout=10)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    keys = r.json()["keys"]
    assert keys, "no keys in the JWKS"
    for k in keys:
        assert k["kty"] == "OKP" and k["crv"] == "Ed25519", k
        assert k.get("alg") == "EdDSA" and k.get("use") == "sig", k
        assert isinstance(k.get("kid"), str) and k["kid"], k
        assert len(_b64url_decode(k["x"])) == 32, k
        assert "d" not in k, "private key material in the JWKS"

    # The admin page computes identity-verified with current_user(verify=True), the
    # JWKS URL coming from DASHGATE_JWKS_URL (set by conftest to the gateway's).
    signed_in(driver, gateway, "admin")
    driver.find_element(By.ID, "nav-admin").click()
    verified = WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "identity-verified")))
    assert verified.text == "verified", verified.text

    # Negative control, straight to the app (bypassing the gateway): forged plain
    # headers still drive the header-based layout, but they do not verify.
    direct = requests.post(
        gateway.dash_url + "/_dash-update-component",
        json=pages_body("/admin"),
        headers={"X-Forwarded-User": "admin", "X-Forwarded-Roles": "admin"},
        timeout=10,
    )
    assert direct.status_code == 200, (direct.status_code, direct.text[:300])
    assert '"NOT verified"' in direct.text, direct.text[:500]
    # ...and the app's own guard refuses the salary callback without the permission (204).
    direct = requests.post(
        gateway.dash_url + "/_dash-update-component",
        json=salary_body(),
        headers={"X-Forwarded-User": "viewer", "X-Forwarded-Roles": "admin"},
        timeout=10,
    )
    assert direct.status_code == 204, (direct.status_code, direct.text[:300])
