"""Processes the Python test suites start (the Dash app, the gateway, the OpenID provider):
free ports, readiness polled with a deadline, logs kept for failure reports, the gateway's
command line, and teardown of a whole process group. Shared by tests/browser and tests/dash.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_DEADLINE = 30.0  # seconds, for every process started here
CLI_TIMEOUT = 60.0

# Log files of the processes started; appended to every failing test's report.
LOGS: dict[str, Path] = {}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_log(path: Path, limit: int = 20000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    return text if len(text) <= limit else "...\n" + text[-limit:]


def all_logs() -> str:
    return "\n".join(f"===== {name} ({p}) =====\n{read_log(p)}" for name, p in LOGS.items())


def wait_until_ready(
    url: str, proc: subprocess.Popen, what: str, expect_status: int | None = None, verify: bool | str = True
) -> None:
    """Poll `url` until it answers (with `expect_status` if given) or the deadline passes;
    `verify` is requests' (a CA file for a self-signed gateway)."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited early with code {proc.returncode}\n{all_logs()}")
        try:
            r = requests.get(url, timeout=2, allow_redirects=False, verify=verify)
            last = f"HTTP {r.status_code}: {r.text[:300]!r}"
            if expect_status is None or r.status_code == expect_status:
                return
        except requests.RequestException as e:
            last = repr(e)
        time.sleep(0.1)  # poll interval, not a readiness assumption
    raise RuntimeError(f"{what} not ready at {url} within {STARTUP_DEADLINE}s (last: {last})\n{all_logs()}")


def start(name: str, cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start `cmd` in its own process group, stdout and stderr into `log` (kept for reports)."""
    LOGS[name] = log
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env if env is not None else dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen | None) -> None:
    """Terminate a process we started (its own process group), then kill if needed."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def gateway_binary() -> Path:
    """The gateway under test: $DASHGATE_BIN, by default target/debug/dashgate."""
    path = Path(os.environ.get("DASHGATE_BIN", "target/debug/dashgate"))
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not (path.is_file() and os.access(path, os.X_OK)):
        raise RuntimeError(
            f"gateway binary not found or not executable: {path} (build it with `cargo build`, or set DASHGATE_BIN)"
        )
    return path


def cli(gateway_bin: Path, workdir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run a gateway command against `workdir`'s database; passwords only ever on stdin."""
    cmd = [str(gateway_bin), "--database", "sqlite://dashgate.db", *args]
    res = subprocess.run(
        cmd,
        cwd=workdir,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        env=dict(os.environ, DASHGATE_COOKIE_SECURE="false"),
    )
    if res.returncode != 0:
        raise RuntimeError(
            f"`dashgate {' '.join(args)}` failed with code {res.returncode}\n"
            f"stdout: {res.stdout}\nstderr: {res.stderr}"
        )
    return res


def add_roles_and_users(
    gateway_bin: Path,
    workdir: Path,
    role_permissions: dict[str, list[str]],
    users: dict[str, tuple[str, list[str]]],
) -> None:
    """Create roles (name -> permissions) and users (name -> (password, roles))."""
    for role, perms in role_permissions.items():
        cli(gateway_bin, workdir, "roles", "add", role, *[a for p in perms for a in ("--perm", p)])
    for name, (password, roles) in users.items():
        role_args = [a for r in roles for a in ("--role", r)]
        # password only on stdin, never on argv
        cli(gateway_bin, workdir, "users", "add", name, *role_args, "--password-stdin", stdin=password + "\n")


def start_gateway(
    gateway_bin: Path,
    workdir: Path,
    port: int,
    upstream: str,
    policy: Path,
    config: str | None = None,
    name: str = "gateway",
    tls: tuple[Path, Path] | None = None,
) -> subprocess.Popen:
    """Serve the gateway from `workdir` (database, keys, log) on loopback `port`, plain HTTP
    or, given `tls` (certificate and key files), HTTPS with Secure cookies, in front of
    `upstream` with `policy` (and `config` as its TOML file), ready when it returns; stop it
    with `stop`."""
    cmd = [
        str(gateway_bin),
        "serve",
        "--listen", f"127.0.0.1:{port}",
        "--upstream", upstream,
        "--database", "sqlite://dashgate.db",  # relative to cwd = workdir
        "--keys-dir", str(workdir / "keys"),
        "--policy", str(policy),
    ]
    if config is not None:
        config_file = workdir / "dashgate.toml"
        config_file.write_text(config)
        cmd += ["--config", str(config_file)]
    env = dict(os.environ, RUST_BACKTRACE="1")
    if tls is None:
        env["DASHGATE_COOKIE_SECURE"] = "false"  # plain HTTP on loopback
    else:
        env["DASHGATE_TLS_CERT_FILE"], env["DASHGATE_TLS_KEY_FILE"] = str(tls[0]), str(tls[1])
    env.setdefault("RUST_LOG", "info")
    proc = start(name, cmd, workdir, workdir / f"{name}.log", env)
    scheme = "http" if tls is None else "https"
    try:
        wait_until_ready(
            f"{scheme}://127.0.0.1:{port}/auth/healthz",
            proc,
            name,
            expect_status=200,
            verify=True if tls is None else str(tls[0]),
        )
    except BaseException:
        stop(proc)
        raise
    return proc


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (openssl), written into `directory`: (certificate
    file, key file)."""
    cert, key = directory / "tls.crt", directory / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def start_chromium(tmp_path: Path, logs: tuple[str, ...] = ("performance",)):
    """A fresh headless Chromium (Debian's chromium + chromium-driver, or $CHROMIUM_BIN and
    $CHROMEDRIVER_BIN) with its own profile under `tmp_path`, keeping the named Chrome logs
    (`performance`: network events; `browser`: the console). The caller quits it. It accepts
    the self-signed certificates of gateways the tests start on loopback."""
    import pytest
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chromium = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
    chromedriver = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
    for p in (chromium, chromedriver):
        if not os.access(p, os.X_OK):
            pytest.fail(f"{p} missing (apt-get install chromium chromium-driver)", pytrace=False)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    opts = Options()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        "--ignore-certificate-errors",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {name: "ALL" for name in logs})
    service = Service(executable_path=chromedriver, log_output=str(tmp_path / "chromedriver.log"))
    drv = webdriver.Chrome(service=service, options=opts)
    drv.set_page_load_timeout(30)
    return drv


def dash_interpreter(version: str) -> Path:
    """The Python of `.venv-dash<version>` (made by scripts/test from
    tests/dash/requirements-dash<version>.txt); the test fails with the command to make it when
    it is missing."""
    import pytest

    python = REPO_ROOT / f".venv-dash{version}" / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"{python} is missing: DASHGATE_VENV=.venv-dash{version} scripts/venv tests/dash/requirements-dash{version}.txt",
            pytrace=False,
        )
    return python
