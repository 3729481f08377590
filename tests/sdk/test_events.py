"""Events to a local webhook receiver: Event Grid shape, HMAC-SHA256
signatures, near-expiry once per version, retries with backoff, dead letters."""
import hashlib
import hmac
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

from conftest import remember
from test_identity import cli, cli_json


class Receiver:
    def __init__(self, fail_first=0, always_fail=False):
        self.events, self.attempts = [], 0
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.attempts += 1
                if always_fail or outer.attempts <= fail_first:
                    self.send_response(500); self.end_headers(); return
                outer.events.append((self.headers["x-keyfort-signature"], body))
                self.send_response(200); self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = HTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait(self, n, timeout=20, subject=None):
        """Waits for `n` deliveries (about `subject`, if given: other tests'
        secrets can fire events on the same vault)."""
        def mine():
            if subject is None:
                return self.events
            return [(s, b) for s, b in self.events if any(e["subject"] == subject for e in json.loads(b))]
        deadline = time.time() + timeout
        while time.time() < deadline and len(mine()) < n:
            time.sleep(0.1)
        return mine()


def decoded(events, secret):
    out = []
    for sig, body in events:
        assert sig == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(), "signed with the subscription's secret"
        out.extend(json.loads(body))
    return out


def test_new_versions_near_expiry_and_signatures(server, client):
    r = Receiver()
    sub = cli_json(server, "event", "subscription", "create", "--vault-name", "dev", "--endpoint", r.url)
    assert sub["secret"]
    assert "secret" not in json.dumps(cli_json(server, "event", "subscription", "list", "--vault-name", "dev"))
    name = f"ev-{uuid.uuid4().hex[:8]}"
    from datetime import datetime, timedelta, timezone
    s1 = client.set_secret(name, remember(f"e-{uuid.uuid4().hex}"))
    s2 = client.set_secret(name, remember(f"e-{uuid.uuid4().hex}"), expires_on=datetime.now(timezone.utc) + timedelta(days=10))
    events = decoded(r.wait(3, subject=name), sub["secret"])
    mine = [e for e in events if e["subject"] == name]
    created = [e for e in mine if e["eventType"] == "Microsoft.KeyVault.SecretNewVersionCreated"]
    assert [e["data"]["Version"] for e in created] == [s1.properties.version, s2.properties.version], "in order"
    near = [e for e in mine if e["eventType"] == "Microsoft.KeyVault.SecretNearExpiry"]
    assert len(near) == 1 and near[0]["data"]["Version"] == s2.properties.version
    e = created[0]
    assert e["topic"].endswith("/providers/Microsoft.KeyVault/vaults/dev") and e["data"]["VaultName"] == "dev"
    assert e["data"]["ObjectType"] == "Secret" and e["data"]["Id"] == s1.id
    cli_json(server, "event", "subscription", "delete", "--vault-name", "dev", "--id", sub["id"])


def test_retries_then_dead_letter(server, client):
    flaky = Receiver(fail_first=2)
    dead = Receiver(always_fail=True)
    s1 = cli_json(server, "event", "subscription", "create", "--vault-name", "dev", "--endpoint", flaky.url,
                  "--event-type", "SecretNewVersionCreated")
    s2 = cli_json(server, "event", "subscription", "create", "--vault-name", "dev", "--endpoint", dead.url)
    client.set_secret(f"retry-{uuid.uuid4().hex[:6]}", remember(f"r-{uuid.uuid4().hex}"))
    assert len(flaky.wait(1, timeout=20)) == 1 and flaky.attempts == 3, "delivered on the third attempt"
    deadline = time.time() + 30
    letters = []
    while time.time() < deadline and not letters:
        letters = cli_json(server, "event", "dead-letters", "--vault-name", "dev")
        time.sleep(0.5)
    assert letters and letters[0]["attempts"] == 4 and "500" in letters[0]["lastError"]
    assert dead.attempts == 4
    for s in (s1, s2):
        cli_json(server, "event", "subscription", "delete", "--vault-name", "dev", "--id", s["id"])
    r = cli(server, "event", "subscription", "create", "--vault-name", "dev", "--endpoint", "http://example.com/hook")
    assert r.returncode == 1 and "https" in r.stderr


def test_a_retried_event_keeps_its_place(server, client):
    """The first event fails once; the second, queued behind it, waits for
    its retry instead of overtaking it."""
    flaky = Receiver(fail_first=1)
    sub = cli_json(server, "event", "subscription", "create", "--vault-name", "dev", "--endpoint", flaky.url,
                   "--event-type", "SecretNewVersionCreated")
    name = f"order-{uuid.uuid4().hex[:6]}"
    v1 = client.set_secret(name, remember(f"o-{uuid.uuid4().hex}")).properties.version
    v2 = client.set_secret(name, remember(f"o-{uuid.uuid4().hex}")).properties.version
    got = decoded(flaky.wait(2, timeout=20, subject=name), sub["secret"])
    assert [e["data"]["Version"] for e in got] == [v1, v2]
    assert flaky.attempts == 3
    cli_json(server, "event", "subscription", "delete", "--vault-name", "dev", "--id", sub["id"])


def test_vault_and_role_assignment_changes(server):
    import base64
    rx = Receiver()
    name = f"evv{uuid.uuid4().hex[:8]}"
    cli_json(server, "vault", "create", "--name", name, "--tag", "app=a", "--tag", "env=e")
    sub = cli_json(server, "event", "subscription", "create", "--vault-name", name, "--endpoint", rx.url,
                   "--event-type", "VaultChanged", "--event-type", "RoleAssignmentChanged")
    oid = json.loads(base64.urlsafe_b64decode(server.token().split(".")[1] + "=="))["oid"]
    a = cli_json(server, "role", "assignment", "create", "--role", "Key Vault Reader", "--assignee", oid, "--vault", name)
    cli_json(server, "vault", "update", "--name", name, "--tag", "owner=x")
    events = decoded(rx.wait(2), sub["secret"])
    kinds = {(e["eventType"], e["data"].get("Change")) for e in events}
    assert ("Microsoft.KeyVault.RoleAssignmentChanged", "Created") in kinds
    assert ("Microsoft.KeyVault.VaultChanged", "Updated") in kinds
    assert any(e["data"].get("RoleAssignmentId") == a["name"] for e in events)


def test_key_versions_and_expiry(server):
    from datetime import datetime, timedelta, timezone
    from azure.keyvault.keys import KeyClient
    keys = KeyClient(server.dev["vault_url"], server.credential(), connection_verify=server.dev["ca_cert"])
    r = Receiver()
    sub = cli_json(server, "event", "subscription", "create", "--vault-name", "dev", "--endpoint", r.url,
                   "--event-type", "KeyNewVersionCreated", "--event-type", "KeyNearExpiry",
                   "--event-type", "KeyExpired")
    name = f"evk-{uuid.uuid4().hex[:8]}"
    k1 = keys.create_ec_key(name, expires_on=datetime.now(timezone.utc) + timedelta(days=5))
    k2 = keys.rotate_key(name)
    expired = keys.create_rsa_key(f"{name}-old", size=2048, expires_on=datetime.now(timezone.utc) - timedelta(hours=1))
    events = decoded(r.wait(3, subject=name), sub["secret"])
    created = [e for e in events if e["eventType"] == "Microsoft.KeyVault.KeyNewVersionCreated"]
    assert [e["data"]["Version"] for e in created] == [k1.properties.version, k2.properties.version], "in order"
    assert created[0]["data"]["ObjectType"] == "Key" and created[0]["data"]["Id"] == k1.id
    near = [e for e in events if e["eventType"] == "Microsoft.KeyVault.KeyNearExpiry"]
    assert [e["data"]["Version"] for e in near] == [k1.properties.version], "once, for the version that expires"
    old = decoded(r.wait(2, subject=f"{name}-old"), sub["secret"])
    assert {e["eventType"] for e in old} == {"Microsoft.KeyVault.KeyNewVersionCreated", "Microsoft.KeyVault.KeyExpired"}
    assert all(e["data"]["Version"] == expired.properties.version for e in old)
    cli_json(server, "event", "subscription", "delete", "--vault-name", "dev", "--id", sub["id"])
