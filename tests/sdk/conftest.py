"""Fixtures for the SDK conformance suite: real `keyfort dev` processes on free
ports, driven by the unmodified Azure SDK for Python over TLS.

Every secret value a test sets goes through `remember()`, so the last test can
scan every data folder and every server's output for it (none may appear).
"""
import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("KEYFORT_BIN", ROOT / "target" / "debug" / "keyfort"))

# '*.vault.localhost' does not resolve everywhere: point every '.localhost'
# name at the loopback address, as DESIGN §2 says tests do themselves.
_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo

REMEMBERED: list[str] = []
DATA_DIRS: list[Path] = []
OUTPUTS: list[Path] = []


def remember(value: str) -> str:
    """Registers a secret value for the final leak scan and returns it."""
    REMEMBERED.append(value)
    return value


def free_port() -> int:
    """A free port below the ephemeral range, so no client connection's local
    port can collide with a server started a moment later."""
    import random
    for _ in range(200):
        port = random.randint(20000, 30000)
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            try:
                s.bind(("::", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port found")


class DevServer:
    """One `keyfort dev` process with its own data folder."""

    def __init__(self, data_dir: Path, *extra: str, preexec_fn=None):
        self.data_dir = data_dir
        self.extra = extra
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.proc = None
        self.dev = None
        self.starts = 0
        DATA_DIRS.append(data_dir)

    def start(self):
        self.starts += 1
        out = self.data_dir.parent / f"{self.data_dir.name}-run{self.starts}.log"
        OUTPUTS.append(out)
        self._log = open(out, "wb")
        # A dev.json left by the previous run must not be taken for readiness.
        (self.data_dir / "dev.json").unlink(missing_ok=True)
        self.proc = subprocess.Popen(
            [str(BIN), "dev", "--data-dir", str(self.data_dir), "--port", str(self.port), *self.extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec_fn,
        )
        dev_json = self.data_dir / "dev.json"
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keyfort dev exited with {self.proc.returncode}; see {out}")
            if dev_json.exists():
                try:
                    self.dev = json.loads(dev_json.read_text())
                    return self
                except json.JSONDecodeError:
                    pass  # being written
            time.sleep(0.05)
        raise RuntimeError(f"keyfort dev did not become ready; see {out}")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self._log.close()
        return self.proc.returncode

    def credential(self):
        d = self.dev
        return ClientSecretCredential(
            d["tenant_id"], d["client_id"], d["client_secret"],
            authority=d["authority"], disable_instance_discovery=True, connection_verify=d["ca_cert"],
        )

    def client(self):
        return SecretClient(self.dev["vault_url"], self.credential(), connection_verify=self.dev["ca_cert"])

    def token(self):
        return self.credential().get_token(self.dev["audience"] + "/.default").token


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = DevServer(tmp_path_factory.mktemp("kf") / "main").start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def protected_server(tmp_path_factory):
    """A second dev server (its own tenant) whose vault has purge protection on."""
    s = DevServer(tmp_path_factory.mktemp("kf") / "protected", "--purge-protection").start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def client(server):
    return server.client()
