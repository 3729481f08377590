"""The best-practice advisor: a vault set up against each practice yields the
expected finding; a vault that follows them all yields none."""
import json
import time
import uuid

from conftest import DevServer
from test_events import Receiver
from test_identity import cli, cli_json

def ec_jwk():
    """A P-256 private key made here: an imported key, whose owner has a copy."""
    import base64
    from cryptography.hazmat.primitives.asymmetric import ec
    n = ec.generate_private_key(ec.SECP256R1()).private_numbers()
    b64 = lambda i: base64.urlsafe_b64encode(i.to_bytes(32, "big")).rstrip(b"=").decode()
    return {"kty": "EC", "crv": "P-256", "x": b64(n.public_numbers.x), "y": b64(n.public_numbers.y),
            "d": b64(n.private_value)}


def test_a_vault_that_follows_every_practice_has_no_finding(tmp_path):
    """On a server whose audit records also go off the host (a webhook)."""
    collector = Receiver()
    server = DevServer(tmp_path / "advised", "--audit-webhook", collector.url).start()
    try:
        good = f"good{uuid.uuid4().hex[:8]}"
        cli_json(server, "vault", "create", "--name", good, "--tag", "app=billing", "--tag", "env=prod")
        cli_json(server, "vault", "update", "--name", good, "--default-action", "Deny", "--ip-rule", "127.0.0.1")
        assert cli_json(server, "advisor", "--only", good) == []
        assert cli(server, "advisor", "--only", good, "--strict").returncode == 0
        # The webhook got the same chained records as the file, in order.
        deadline = time.time() + 20
        while True:
            shipped = [json.loads(line) for _, body in list(collector.events) for line in body.splitlines()
                       if line.strip()]
            if any(r.get("vault") == good for r in shipped) or time.time() > deadline:
                break
            time.sleep(0.1)
        on_disk = [json.loads(line) for line in (server.data_dir / "audit.jsonl").read_text().splitlines()]
        assert shipped and shipped == on_disk[:len(shipped)]
        assert [r["sequence"] for r in shipped] == list(range(1, len(shipped) + 1))
        assert any(r.get("vault") == good for r in shipped)
    finally:
        server.stop()
        collector.httpd.shutdown()


def test_advisor_findings(server, tmp_path):
    bad = f"bad{uuid.uuid4().hex[:8]}"

    cli_json(server, "vault", "create", "--name", bad, "--no-purge-protection")
    # A secret without expiry (the dev principal needs a data role on the new vault first).
    import base64, json
    tok = server.token()
    oid = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "=="))["oid"]
    cli_json(server, "role", "assignment", "create", "--role", "Key Vault Administrator", "--assignee", oid, "--vault", bad)
    cli_json(server, "secret", "set", "--name", "forever", "--value", "x", "--vault", bad)
    # A person holding a privileged role permanently.
    user = cli_json(server, "user", "create", "--username", f"carol-{uuid.uuid4().hex[:6]}", stdin="a long password 123")
    cli_json(server, "role", "assignment", "create", "--role", "Key Vault Secrets Officer", "--assignee", user["objectId"], "--vault", bad)
    # A person who only reads is not privileged.
    reader = cli_json(server, "user", "create", "--username", f"dave-{uuid.uuid4().hex[:6]}", stdin="a long password 456")
    cli_json(server, "role", "assignment", "create", "--role", "Key Vault Reader", "--assignee", reader["objectId"], "--vault", bad)
    # A privileged role whose activation needs no MFA.
    cli_json(server, "pim", "eligible", "create", "--role", "Key Vault Crypto Officer", "--assignee", user["objectId"], "--vault", bad)
    cli_json(server, "pim", "policy", "set", "--role", "Key Vault Crypto Officer", "--require-mfa", "false", "--vault", bad)

    # A key generated in the vault and never backed up (with no grace days),
    # beside an imported one, of which its owner has a copy.
    cli_json(server, "key", "create", "--name", "generated", "--kty", "EC", "--vault", bad)
    jwk = tmp_path / "imported.jwk"
    jwk.write_text(json.dumps(ec_jwk()))
    cli_json(server, "key", "import", "--name", "imported", "--jwk-file", str(jwk), "--vault", bad)

    findings = cli_json(server, "advisor", "--only", bad, "--key-backup-days", "0")
    checks = {f["check"]: f for f in findings}
    for check, severity in [
        ("purge-protection-off", "High"),
        ("public-network-open", "Medium"),
        ("vault-purpose-unclear", "Medium"),
        ("standing-privileged-user", "High"),
        ("pim-policy-weak", "High"),
        ("secret-without-expiry", "Low"),
        ("audit-kept-on-host", "Medium"),
        ("key-without-backup", "High"),
    ]:
        assert check in checks, f"{check} missing from {sorted(checks)}"
        assert checks[check]["severity"] == severity
        assert checks[check]["vault"] == bad
        assert checks[check]["fix"].startswith("keyfort "), "every finding says how to fix it"
    assert "forever" in checks["secret-without-expiry"]["evidence"]
    assert "generated" in checks["key-without-backup"]["evidence"]
    assert "imported" not in checks["key-without-backup"]["evidence"]
    # With the default grace period a new key is not due yet; a backup
    # covers it at once.
    assert "key-without-backup" not in {f["check"] for f in cli_json(server, "advisor", "--only", bad)}
    cli_json(server, "key", "backup", "--name", "generated", "--file", str(tmp_path / "generated.kb"), "--vault", bad)
    after_backup = cli_json(server, "advisor", "--only", bad, "--key-backup-days", "0")
    assert "key-without-backup" not in {f["check"] for f in after_backup}
    # A rotation makes new material that the old backup does not hold.
    cli_json(server, "key", "rotate", "--name", "generated", "--vault", bad)
    after_rotation = cli_json(server, "advisor", "--only", bad, "--key-backup-days", "0")
    assert "key-without-backup" in {f["check"] for f in after_rotation}
    standing = [f["evidence"] for f in findings if f["check"] == "standing-privileged-user"]
    assert any(user["username"] in e for e in standing)
    assert not any(reader["username"] in e for e in standing), "a read-only role is not privileged"
    r = cli(server, "advisor", "--only", bad, "--strict")
    assert r.returncode == 1 and "high finding" in r.stderr


def test_shared_vaults_are_found_by_tags_and_by_callers(server):
    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient
    from conftest import remember
    by_tags, by_callers = f"tags{uuid.uuid4().hex[:8]}", f"calls{uuid.uuid4().hex[:8]}"
    cli_json(server, "vault", "create", "--name", by_tags, "--tag", "app=billing", "--tag", "env=dev,prod")
    cli_json(server, "vault", "create", "--name", by_callers, "--tag", "app=billing", "--tag", "env=prod")
    import base64
    oid = json.loads(base64.urlsafe_b64decode(server.token().split(".")[1] + "=="))["oid"]
    cli_json(server, "role", "assignment", "create", "--role", "Key Vault Administrator", "--assignee", oid,
             "--vault", by_callers)
    cli_json(server, "secret", "set", "--name", "cfg", "--value", remember(f"c-{uuid.uuid4().hex}"), "--vault", by_callers)
    url = f"https://{by_callers}.vault.localhost:{server.port}"
    for i in range(4):  # four applications read from one vault
        p = cli_json(server, "principal", "create", "--name", f"app{i}-{uuid.uuid4().hex[:4]}")
        cli_json(server, "role", "assignment", "create", "--role", "Key Vault Secrets User", "--assignee",
                 p["objectId"], "--vault", by_callers)
        cred = ClientSecretCredential(server.dev["tenant_id"], p["appId"], p["clientSecret"],
                                      authority=server.dev["authority"], disable_instance_discovery=True,
                                      connection_verify=server.dev["ca_cert"])
        assert SecretClient(url, cred, connection_verify=server.dev["ca_cert"]).get_secret("cfg").value
    tags_finding = [f for f in cli_json(server, "advisor", "--only", by_tags) if f["check"] == "vault-shared"]
    assert tags_finding and "env=dev,prod" in tags_finding[0]["evidence"]
    calls_finding = [f for f in cli_json(server, "advisor", "--only", by_callers) if f["check"] == "vault-shared"]
    assert calls_finding and "different applications" in calls_finding[0]["evidence"]
