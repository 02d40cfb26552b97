"""Chromium for tests/dash4: the per-test browser's helpers, and a DevTools client that sees
the traffic of Dash's WebSocket.

dash-renderer 4 keeps its WebSocket in a SharedWorker (`dash-ws-worker.js`), a DevTools target
of its own: the page's performance log never shows that socket. `WorkerSockets` opens a second
DevTools connection to the browser, auto-attaches to every shared worker before it runs
(`waitForDebuggerOnStart`), turns on its network domain, and records the worker's
`Network.webSocket*` events (handshakes, frames sent and received, closes).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests
import websocket  # websocket-client, which selenium depends on
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20  # seconds; every wait is a deadline, not a sleep


def wait_until(what: str, probe, timeout: float = WAIT, interval: float = 0.05):
    """Poll `probe()` until it returns something truthy (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)  # poll interval, not a readiness assumption


# ---------------------------------------------------------------------------
# the shared worker's WebSocket, seen through DevTools
# ---------------------------------------------------------------------------


@dataclass
class Frame:
    direction: str  # "sent" (browser -> gateway) or "received"
    socket: str  # the DevTools requestId of the socket
    data: str

    def messages(self) -> list[dict]:
        """The Dash messages in the frame (a frame may carry a JSON array of them)."""
        try:
            value = json.loads(self.data)
        except ValueError:
            return []
        items = value if isinstance(value, list) else [value]
        return [m for m in items if isinstance(m, dict)]


class WorkerSockets:
    """Records the WebSocket traffic of every shared worker of one browser."""

    def __init__(self, debugger_address: str):
        info = requests.get(f"http://{debugger_address}/json/version", timeout=10).json()
        self._ws = websocket.create_connection(info["webSocketDebuggerUrl"], timeout=10, suppress_origin=True)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._replies: dict[int, dict] = {}
        self._reply_ready = threading.Condition(self._lock)
        self._send_lock = threading.Lock()
        self.events: list[tuple[float, str, dict]] = []  # (monotonic time, method, params)
        self.workers: list[str] = []  # URLs of the shared workers attached
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="devtools-reader", daemon=True)
        self._reader.start()
        # Attach to shared workers only (a target no filter entry matches is left alone), and
        # hold each one before it runs, so its socket's handshake is seen too.
        self.call(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True, "filter": [{"type": "shared_worker"}]},
        )

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        msg_id = next(self._ids)
        msg = {"id": msg_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        with self._send_lock:
            self._ws.send(json.dumps(msg))
        return msg_id

    def call(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 10) -> dict:
        msg_id = self._send(method, params, session)
        deadline = time.monotonic() + timeout
        with self._lock:
            while msg_id not in self._replies:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"DevTools did not answer {method} within {timeout}s")
                self._reply_ready.wait(left)
            reply = self._replies.pop(msg_id)
        if "error" in reply:
            raise AssertionError(f"DevTools {method} failed: {reply['error']}")
        return reply.get("result", {})

    def _read(self) -> None:
        while not self._closed:
            try:
                raw = self._ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # the browser went away
                return
            if not raw:
                continue
            msg = json.loads(raw)
            if "id" in msg:
                with self._lock:
                    self._replies[msg["id"]] = msg
                    self._reply_ready.notify_all()
                continue
            method, params = msg.get("method", ""), msg.get("params", {})
            if method == "Target.attachedToTarget":
                session = params["sessionId"]
                self.workers.append(params["targetInfo"].get("url", ""))
                # Fire and forget (this thread reads the replies): the session runs the
                # commands in order, so the network domain is on before the worker starts.
                self._send("Network.enable", {}, session)
                self._send("Runtime.runIfWaitingForDebugger", {}, session)
                continue
            if method.startswith("Network.webSocket"):
                with self._lock:
                    self.events.append((time.monotonic(), method, params))

    def close(self) -> None:
        self._closed = True
        try:
            self._ws.close()
        except Exception:
            pass

    # -- what was seen -------------------------------------------------------

    def _events(self, method: str | None = None) -> list[tuple[float, str, dict]]:
        with self._lock:
            return [e for e in self.events if method is None or e[1] == method]

    def opened(self) -> list[str]:
        """DevTools ids of the sockets whose handshake was answered 101, oldest first."""
        return [
            p["requestId"]
            for _, _, p in self._events("Network.webSocketHandshakeResponseReceived")
            if p["response"].get("status") == 101
        ]

    def closed(self) -> dict[str, float]:
        """Socket id -> when its close was seen."""
        return {p["requestId"]: t for t, _, p in self._events("Network.webSocketClosed")}

    def failures(self) -> list[dict]:
        """Sockets that failed, a refused handshake among them (no status reaches DevTools
        then, only Chromium's error message)."""
        return [p for _, _, p in self._events("Network.webSocketFrameError")]

    def frames(self, direction: str | None = None) -> list[Frame]:
        out = []
        for _, method, p in self._events():
            if method == "Network.webSocketFrameSent":
                d = "sent"
            elif method == "Network.webSocketFrameReceived":
                d = "received"
            else:
                continue
            if direction in (None, d):
                out.append(Frame(d, p["requestId"], p["response"].get("payloadData", "")))
        return out

    def messages(self, direction: str, kind: str | None = None) -> list[tuple[str, dict]]:
        """(socket, message) for every Dash message of `kind` sent or received."""
        return [
            (f.socket, m) for f in self.frames(direction) for m in f.messages() if kind is None or m.get("type") == kind
        ]

    def callback_requests(self, output: str) -> list[tuple[str, dict]]:
        """(socket, message) for every callback_request the browser sent for a callback that
        writes component `output`."""
        return [
            (s, m)
            for s, m in self.messages("sent", "callback_request")
            if str((m.get("payload") or {}).get("output", "")).startswith(output + ".")
        ]

    def response_to(self, request: dict) -> dict | None:
        """The callback_response the browser received for `request` (a callback_request)."""
        for _, m in self.messages("received", "callback_response"):
            if m.get("requestId") == request.get("requestId"):
                return m
        return None


# ---------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------


class PageLog:
    """Every performance-log (page network) and console entry of one browser, read once and
    kept (`get_log` hands each entry out only once)."""

    def __init__(self, driver):
        self.driver = driver
        self.network: list[dict] = []
        self.console: list[dict] = []

    def read(self) -> None:
        for entry in self.driver.get_log("performance"):
            self.network.append(json.loads(entry["message"])["message"])
        self.console.extend(self.driver.get_log("browser"))

    def requests(self) -> list[dict]:
        """`Network.requestWillBeSent` params of the page, in order."""
        self.read()
        return [m["params"] for m in self.network if m.get("method") == "Network.requestWillBeSent"]

    def posts_to(self, path_end: str) -> list[dict]:
        return [
            r for r in self.requests() if r["request"]["method"] == "POST" and urlsplit(r["request"]["url"]).path.endswith(path_end)
        ]

    def set_cookies(self, path_end: str) -> list[str]:
        """Names of the cookies set by the page's answers to requests whose path ends with
        `path_end` (from `Network.responseReceivedExtraInfo`, which carries Set-Cookie)."""
        self.read()
        ids = {
            m["params"]["requestId"]
            for m in self.network
            if m.get("method") == "Network.requestWillBeSent"
            and urlsplit(m["params"]["request"]["url"]).path.endswith(path_end)
        }
        names = []
        for m in self.network:
            if m.get("method") != "Network.responseReceivedExtraInfo" or m["params"]["requestId"] not in ids:
                continue
            for key, value in m["params"].get("headers", {}).items():
                if key.lower() == "set-cookie":
                    names += [line.split("=", 1)[0].strip() for line in value.split("\n") if "=" in line]
        return names

    def console_messages(self) -> list[dict]:
        self.read()
        return list(self.console)


def wait_for_path(driver, path: str) -> None:
    WebDriverWait(driver, WAIT).until(lambda d: urlsplit(d.current_url).path == path, message=f"expected to reach {path}")


def sign_in(driver, base: str, username: str, password: str, start: str = "/") -> None:
    """Open `start` signed out, be sent to the gateway's login page, sign in there, and come back."""
    driver.get(base + start)
    wait_for_path(driver, "/auth/login")
    assert parse_qs(urlsplit(driver.current_url).query).get("next") == [start], driver.current_url
    fill_login_form(driver, username, password)
    wait_for_path(driver, start)


def fill_login_form(driver, username: str, password: str) -> None:
    user_box = WebDriverWait(driver, WAIT).until(EC.visibility_of_element_located((By.ID, "username")))
    user_box.clear()
    user_box.send_keys(username)
    pass_box = driver.find_element(By.ID, "password")
    pass_box.clear()
    pass_box.send_keys(password)
    driver.find_element(By.ID, "sign-in").click()


def wait_text(driver, element_id: str, text: str, timeout: float = WAIT) -> None:
    WebDriverWait(driver, timeout).until(
        EC.text_to_be_present_in_element((By.ID, element_id), text),
        message=f"#{element_id} never showed {text!r}",
    )


def text_of(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text
