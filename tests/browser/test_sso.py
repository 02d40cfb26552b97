"""Browser test of "Sign in with …": Chromium -> dashgate -> a real OpenID provider
(npm oidc-provider on Node) -> back through dashgate to the unmodified Dash app.

The provider's accounts ana (group dash-admins) and vic (group dash-viewers) have no local
account: the gateway provisions them on their first sign-in and maps the groups to roles, and
the Dash app renders its role-aware layout from the identity headers as for local users.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from test_login_flow import ACCESS, WAIT, cookie_map, wait_dashboard, wait_for_path


def at_provider(driver, provider, path_prefix: str) -> None:
    WebDriverWait(driver, WAIT).until(
        lambda d: d.current_url.startswith(provider.issuer + path_prefix),
        message=f"expected the provider's {path_prefix} page",
    )


def sign_in_with_provider(driver, gateway, username: str, password: str) -> None:
    """From an unauthenticated visit to the app, through the provider's login form."""
    driver.get(gateway.url + "/")
    wait_for_path(driver, "/auth/login")
    button = WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "sso")))
    assert button.text == "Sign in with Test IdP"
    button.click()
    at_provider(driver, gateway.provider, "/interaction/")
    user_box = WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "username")))
    user_box.send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "sign-in").click()


def test_sign_in_with_the_provider_reaches_the_app_with_mapped_roles(gateway, driver):
    sign_in_with_provider(driver, gateway, "ana", gateway.provider.passwords["ana"])
    # Back at the app, signed in by the gateway: the Dash layout names ana, and her
    # dash-admins group made her an admin, so the app shows its admin panel.
    wait_dashboard(driver, "ana")
    assert "admin" in driver.find_element(By.ID, "roles").text
    WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "admin-panel")))
    driver.find_element(By.ID, "run").click()
    WebDriverWait(driver, WAIT).until(EC.text_to_be_present_in_element((By.ID, "result"), "Run 1 by ana"))

    cookies = cookie_map(driver.get_cookies())
    assert cookies[ACCESS]["httpOnly"], cookies[ACCESS]
    assert "dashgate-oidc" not in cookies, "the flow cookie is spent after the callback"


def test_viewer_from_the_provider_gets_the_viewer_layout_and_logout_ends_both_sessions(gateway, driver):
    provider = gateway.provider
    sign_in_with_provider(driver, gateway, "vic", provider.passwords["vic"])
    wait_dashboard(driver, "vic")
    assert driver.find_elements(By.ID, "admin-panel") == []

    # Sign out at the gateway; `end_session = true` then sends the browser to the provider,
    # which confirms and sends it back to the gateway's login page.
    driver.find_element(By.ID, "logout").click()
    wait_for_path(driver, "/auth/logout")
    WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "confirm-logout"))).click()
    at_provider(driver, provider, "/session/end")
    WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "confirm-logout"))).click()
    WebDriverWait(driver, WAIT).until(
        lambda d: d.current_url.startswith(gateway.url + "/auth/login"),
        message="the provider should send the browser back to the gateway's login page",
    )
    assert ACCESS not in cookie_map(driver.get_cookies())

    # The provider's session ended too: "Sign in with …" asks for the password again.
    WebDriverWait(driver, WAIT).until(EC.element_to_be_clickable((By.ID, "sso"))).click()
    at_provider(driver, provider, "/interaction/")
    WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "password")))


def test_a_wrong_password_at_the_provider_signs_nobody_in(gateway, driver):
    sign_in_with_provider(driver, gateway, "ana", "not-her-password")
    at_provider(driver, gateway.provider, "/interaction/")
    WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "error")))
    assert ACCESS not in cookie_map(driver.get_cookies())
    # The app is still closed.
    driver.get(gateway.url + "/")
    wait_for_path(driver, "/auth/login")
    assert urlsplit(driver.current_url).netloc == urlsplit(gateway.url).netloc
