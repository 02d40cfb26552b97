"""Attack tests against real Dash apps (2.18, 3.x, 4.x) behind the gateway: every way a viewer
once got what the policy denies, each tried as an attacker would, with the admin's same
request shown to return the content (so no test holds because something simply broke).
The app is tests/dash/app.py, the policy tests/dash/policy.toml.

- Pages under a prefix: `/appadmin` renders `admin` in Dash (a plain `startswith`).
- Pages templates: `fnmatch` lets `/reports/<rid>` render for `/reports/q1/x` and `/reports/..`.
- Pathnames at random, judged against Dash's own resolution (the app's `/_oracle/page`).
- `Patch` answers writing into a hidden child by position.
- A background callback's `progress` / `progressDefault` for a hidden component.
- `running` values of a hidden component in `_dash-dependencies`, and its callback.
- A clientside callback whose output is hidden: its inline code and its listing.
- A dict id hidden by an exact pattern written as its JSON.
"""

from __future__ import annotations

import json
import os
import random
import re
import time

import pytest
import requests

from attack_site import PREFIX, Site
from dash_requests import callback_body, pages_body

UPDATE = PREFIX + "_dash-update-component"
PAGE_MARKERS = {"admin": "ADMIN-PAGE-SECRET", "reports": "REPORTS-PAGE-SECRET", "home": "HOME-PAGE"}
DENIED_PAGES = {"admin", "reports"}  # for the viewer, by tests/dash/policy.toml
DEADLINE = 20.0  # seconds, for a background job to finish (it sleeps 1.5 s)


def oracle(site: Site, pathname: str) -> str | None:
    """The page Dash itself renders for `pathname` (asked of the app, not the gateway)."""
    r = requests.get(site.app_url + "/_oracle/page", params={"pathname": pathname}, timeout=10)
    r.raise_for_status()
    return r.json()["page"]


def navigate(site: Site, user: str, pathname: str) -> requests.Response:
    return site.post(user, UPDATE, pages_body(pathname))


def leaked_pages(text: str) -> set[str]:
    return {page for page in DENIED_PAGES if PAGE_MARKERS[page] in text}


def dependencies(site: Site, user: str) -> list[dict]:
    r = site.get(user, PREFIX + "_dash-dependencies")
    assert r.status_code == 200, r.text
    return r.json()


def spec_for(deps: list[dict], input_id: str) -> dict:
    return next(d for d in deps if d["inputs"] and d["inputs"][0]["id"] == input_id)


def run(site: Site, user: str, input_id: str, params: dict | None = None) -> requests.Response:
    spec = spec_for(dependencies(site, "admin"), input_id)
    return site.post(user, UPDATE, callback_body(spec), params=params)


# ---------------------------------------------------------------------------
# Dash Pages
# ---------------------------------------------------------------------------


def test_pages_outside_the_prefix_are_no_pages(site: Site):
    # The attack is real: Dash renders the admin page for /appadmin.
    assert oracle(site, "/appadmin") == "admin"
    r = navigate(site, "viewer", "/appadmin")
    assert r.status_code == 400, (r.status_code, r.text[:300])
    assert not leaked_pages(r.text)
    r = navigate(site, "viewer", "/app/admin")
    assert r.status_code == 403 and not leaked_pages(r.text), (r.status_code, r.text[:300])
    # The admin reaches the page by its real path; the viewer reaches the rest of the app.
    r = navigate(site, "admin", "/app/admin")
    assert r.status_code == 200 and PAGE_MARKERS["admin"] in r.text, r.text[:300]
    for pathname in ("/app/", "/app"):
        r = navigate(site, "viewer", pathname)
        assert r.status_code == 200 and PAGE_MARKERS["home"] in r.text, (pathname, r.text[:300])


@pytest.mark.parametrize("pathname", ["/app/reports/q1", "/app/reports/q1/x", "/app/reports/a/b/c", "/app/reports/..", "/app/reports/q1/../x", "/app/reports/%2e%2e"])
def test_pages_templates_are_judged_as_dash_matches_them(site: Site, pathname: str):
    assert oracle(site, pathname) == "reports", "Dash renders the reports page for it"
    r = navigate(site, "viewer", pathname)
    assert r.status_code in (400, 403), (r.status_code, r.text[:300])
    assert not leaked_pages(r.text)


def test_the_admin_reaches_template_pages(site: Site):
    r = navigate(site, "admin", "/app/reports/q1/x")
    # (Dash writes `/` in JSON strings as \u002f.)
    assert r.status_code == 200 and "REPORTS-PAGE-SECRET q1/x" in json.dumps(r.json()), r.text[:300]


SEGMENTS = ["app", "admin", "reports", "home", "q1", "x", "..", ".", "", "%2e%2e", "%2F", "Admin", "APP",
            "appadmin", "app;x", "admin;x", ";x", "%61dmin", "%2Fadmin", "reports%2Fq1", "r*", "[a]", "a?b"]


def random_pathname(rng: random.Random) -> str:
    head = rng.choice(["/app", "/app/", "/", "/appadmin", "//app", "/app/reports"])
    parts = [rng.choice(SEGMENTS) for _ in range(rng.randint(0, 4))]
    path = head.rstrip("/") + "/" + "/".join(parts) if parts else head
    return path + ("/" if rng.random() < 0.2 else "")


def test_random_pathnames_never_render_a_denied_page(site: Site):
    """A fuzz of the Pages decision against Dash's own resolution: whatever page Dash would
    render for a pathname, a viewer refused that page gets no answer from it."""
    seed = int(os.environ.get("PAGES_FUZZ_SEED", "1309"))
    rng = random.Random(seed)
    tried: set[str] = set()
    denied_by_dash = 0
    for _ in range(400):
        pathname = random_pathname(rng)
        if pathname in tried:
            continue
        tried.add(pathname)
        page = oracle(site, pathname)
        r = navigate(site, "viewer", pathname)
        assert not leaked_pages(r.text), (seed, pathname, page, r.status_code, r.text[:300])
        if page in DENIED_PAGES:
            denied_by_dash += 1
            assert r.status_code in (400, 403), (seed, pathname, page, r.status_code)
        elif r.status_code == 200 and page is not None:
            assert PAGE_MARKERS.get(page, "404") in r.text or page == "404", (pathname, page, r.text[:300])
    # The fuzz reached the denied pages often enough to mean something.
    assert denied_by_dash >= 30, (seed, denied_by_dash, len(tried))


# ---------------------------------------------------------------------------
# Callback answers
# ---------------------------------------------------------------------------


def test_patch_answers_do_not_write_into_hidden_children(site: Site):
    for button, secrets_ in (("patch-btn", ["PATCH-SECRET"]), ("merge-btn", ["MERGE-SECRET", "OPS-APPENDED-SECRET"])):
        admin = run(site, "admin", button)
        assert admin.status_code == 200 and all(s in admin.text for s in secrets_), admin.text[:500]
        viewer = run(site, "viewer", button)
        assert viewer.status_code == 200, viewer.text[:300]
        assert not any(s in viewer.text for s in secrets_), viewer.text
        patch = viewer.json()["response"]["cards"]["children"]
        assert patch["__dash_patch_update"] == "__dash_patch_update"
        if button == "merge-btn":
            # What does not reach into a child stays: the visible appended card.
            assert "PATCH-APPENDED" in viewer.text, viewer.text


def end_id(site: Site, user: str) -> dict:
    """Dash 4 signs background handles for one page load: the `end_id` of its index page."""
    r = site.get(user, PREFIX, Accept="text/html")
    m = re.search(r'"end_id":"([^"]+)"', r.text)
    return {"endId": m.group(1)} if m else {}


def background_answers(site: Site, user: str) -> list[str]:
    """Every answer of one run of the background callback, polled as dash-renderer does."""
    params = end_id(site, user)
    first = run(site, user, "bg-btn", params=params)
    assert first.status_code == 200, first.text
    answers = [first.text]
    handles = first.json()
    poll = dict(params, cacheKey=handles["cacheKey"], job=handles["job"])
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        r = run(site, user, "bg-btn", params=poll)
        assert r.status_code == 200, r.text
        answers.append(r.text)
        if "background done" in r.text:
            return answers
        time.sleep(0.1)  # the renderer's polling interval, shortened
    pytest.fail(f"the background job did not finish in {DEADLINE}s: {answers}")


def test_background_progress_of_hidden_components_stays_at_the_gateway(site: Site):
    admin = "\n".join(background_answers(site, "admin"))
    assert "PROGRESS-DEFAULT-SECRET" in admin and "PROGRESS-SECRET" in admin, admin
    viewer = "\n".join(background_answers(site, "viewer"))
    assert "PROGRESS" not in viewer and "background done" in viewer, viewer


def test_running_values_of_hidden_components_stay_at_the_gateway(site: Site):
    admin = json.dumps(dependencies(site, "admin"))
    assert "RUNNING-SECRET-ON" in admin and "RUNNING-SECRET-OFF" in admin
    viewer_deps = dependencies(site, "viewer")
    assert "RUNNING-SECRET" not in json.dumps(viewer_deps)
    # The running output counts as an output of the callback: the viewer may not run it.
    r = run(site, "viewer", "run-btn")
    assert r.status_code == 403, r.text[:300]
    r = run(site, "admin", "run-btn")
    assert r.status_code == 200 and "ran 1" in r.text, r.text[:300]


def test_clientside_code_writing_hidden_components_stays_at_the_gateway(site: Site):
    admin = site.get("admin", PREFIX, Accept="text/html")
    assert "CLIENTSIDE-SECRET" in admin.text
    viewer = site.get("viewer", PREFIX, Accept="text/html")
    assert viewer.status_code == 200 and "CLIENTSIDE-SECRET" not in viewer.text
    # The page still works: the renderer and the Pages title function are there.
    assert "_dash-renderer" in viewer.text and "document.title" in viewer.text
    outputs = [d["output"] for d in dependencies(site, "viewer")]
    assert "ops-cs.children" not in outputs and "run-out.children" in outputs
    assert "ops-cs.children" in [d["output"] for d in dependencies(site, "admin")]


def test_a_dict_id_named_by_its_json_is_hidden(site: Site):
    admin = site.get("admin", PREFIX + "_dash-layout")
    assert "VAULT-SECRET" in admin.text and "PUBLIC-VAULT" in admin.text
    viewer = site.get("viewer", PREFIX + "_dash-layout")
    assert "VAULT-SECRET" not in viewer.text and "PUBLIC-VAULT" in viewer.text, viewer.text[:500]
    assert "OPS-PANEL-SECRET" not in viewer.text
    assert run(site, "viewer", "vault-btn").status_code == 403
    r = run(site, "admin", "vault-btn")
    assert r.status_code == 200 and "VAULT-CALLBACK-SECRET" in r.text
