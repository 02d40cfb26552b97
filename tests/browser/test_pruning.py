"""Role-aware layouts for an unmodified Dash app: the gateway removes what a user may not see.

The example app puts its operations panel (`ops-panel`, with `ops-oncall`, `ops-page`,
`ops-status`) in every user's layout and an `ops-summary` card in its Dash Pages home page,
with no role logic; the policy (`dash_components = ["ops-*"]`, role admin) makes the gateway
remove them for everyone else. These tests talk to the real Dash app through the gateway,
first over plain HTTP as API clients (bearer tokens), then in Chromium, where they also read
every `_dash-*` answer the browser received (Chrome DevTools Protocol) and the page source.
"""

from __future__ import annotations

import json

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from dash_requests import pages_body
from test_login_flow import WAIT, login_via_browser, wait_dashboard

SECRET = "+49 30 5550 1234"  # in ops-oncall
SUMMARY = "Error budget left: 41 minutes"  # in ops-summary, inside the home page


def bearer(gateway, user: str) -> dict[str, str]:
    r = requests.post(
        gateway.url + "/auth/login",
        json={"username": user, "password": gateway.passwords[user]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}", "Accept": "application/json"}


def pages_callback(gateway, headers: dict[str, str], pathname: str) -> requests.Response:
    """The Dash Pages routing callback, as dash-renderer sends it for a navigation."""
    body = pages_body(pathname)
    return requests.post(gateway.url + "/_dash-update-component", json=body, headers=headers, timeout=30)


def ops_callback(gateway, headers: dict[str, str]) -> requests.Response:
    body = {
        "output": "ops-status.children",
        "outputs": {"id": "ops-status", "property": "children"},
        "inputs": [{"id": "ops-page", "property": "n_clicks", "value": 1}],
        "state": [],
        "changedPropIds": ["ops-page.n_clicks"],
    }
    return requests.post(gateway.url + "/_dash-update-component", json=body, headers=headers, timeout=30)


def ids_in(tree) -> set[str]:
    """Every string component id in a JSON tree."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and isinstance(props.get("id"), str):
                found.add(props["id"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def test_the_layout_and_pages_answers_carry_the_panel_only_for_admins(gateway):
    admin, viewer = bearer(gateway, "admin"), bearer(gateway, "viewer")

    layout = requests.get(gateway.url + "/_dash-layout", headers=admin, timeout=30)
    assert layout.status_code == 200
    assert {"ops-panel", "ops-oncall", "ops-page", "ops-status"} <= ids_in(layout.json())
    assert SECRET in layout.text

    layout = requests.get(gateway.url + "/_dash-layout", headers=viewer, timeout=30)
    assert layout.status_code == 200
    assert not {i for i in ids_in(layout.json()) if i.startswith("ops-")}
    assert SECRET not in layout.text and "ops-" not in layout.text
    # The rest of the viewer's layout is intact, and the answer is theirs alone.
    assert {"whoami", "roles", "_pages_content", "logout"} <= ids_in(layout.json())
    assert "private" in layout.headers.get("Cache-Control", "")

    # Dash Pages: the home page arrives in the routing callback's answer.
    page = pages_callback(gateway, admin, "/")
    assert page.status_code == 200 and SUMMARY in page.text
    page = pages_callback(gateway, viewer, "/")
    assert page.status_code == 200
    assert SUMMARY not in page.text and "ops-summary" not in page.text
    assert "run" in ids_in(page.json()), "the rest of the page is there"


def test_the_hidden_panels_callbacks_are_refused_to_others(gateway):
    r = ops_callback(gateway, bearer(gateway, "admin"))
    assert r.status_code == 200 and "Paged 1 time(s) by admin" in r.text
    r = ops_callback(gateway, bearer(gateway, "viewer"))
    assert r.status_code == 403


@pytest.fixture
def network_driver(driver):
    """The per-test Chromium with the DevTools network domain on."""
    driver.execute_cdp_cmd("Network.enable", {})
    return driver


def dash_answers(driver) -> list[str]:
    """Bodies of every `_dash-*` answer this browser received, from the performance log."""
    bodies = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") != "Network.responseReceived":
            continue
        url = message["params"]["response"]["url"]
        if "/_dash-layout" not in url and "/_dash-update-component" not in url:
            continue
        try:
            body = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": message["params"]["requestId"]})
        except Exception:  # a 204 has no body to fetch
            continue
        bodies.append(body.get("body", ""))
    return bodies


def test_the_viewers_browser_never_receives_the_panel(gateway, network_driver):
    driver = network_driver
    login_via_browser(driver, gateway.url, "viewer", gateway.passwords["viewer"])
    wait_dashboard(driver, "viewer")
    assert driver.find_elements(By.ID, "ops-panel") == []
    assert driver.find_elements(By.ID, "ops-summary") == []
    # The page works without it: the viewer's own callback still runs.
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, WAIT).until(EC.text_to_be_present_in_element((By.ID, "result"), "Run 1 by viewer"))

    answers = dash_answers(driver)
    assert len(answers) >= 2, "the layout and the Pages callback were seen"
    for body in answers:
        assert SECRET not in body and SUMMARY not in body and "ops-" not in body, body[:300]
    source = driver.page_source
    assert SECRET not in source and SUMMARY not in source and "ops-panel" not in source


def test_the_admin_sees_and_uses_the_panel(gateway, network_driver):
    driver = network_driver
    login_via_browser(driver, gateway.url, "admin", gateway.passwords["admin"])
    wait_dashboard(driver, "admin")
    WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "ops-panel")))
    assert SECRET in driver.find_element(By.ID, "ops-oncall").text
    assert SUMMARY in driver.find_element(By.ID, "ops-summary").text
    driver.find_element(By.ID, "ops-page").click()
    WebDriverWait(driver, WAIT).until(
        EC.text_to_be_present_in_element((By.ID, "ops-status"), "Paged 1 time(s) by admin")
    )
    assert any(SECRET in body for body in dash_answers(driver))
