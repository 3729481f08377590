"""Tenants, principals (secret and certificate credentials) and users
(password + TOTP) through the directory API, the CLI and azure-identity."""
import base64
import hashlib
import hmac
import json
import os
import struct
import subprocess
import time
import urllib.parse
import uuid

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import CertificateCredential, ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from conftest import BIN, DevServer, remember


def cli(server, *args, stdin=None, env=None):
    e = {**os.environ, "KEYFORT_DEV_JSON": str(server.data_dir / "dev.json"),
         "KEYFORT_LOGIN_CACHE": str(server.data_dir.parent / "login-cache.json"), **(env or {})}
    return subprocess.run([str(BIN), *args], input=stdin, capture_output=True, text=True, timeout=60, env=e)


def cli_json(server, *args, **kw):
    r = cli(server, *args, "-o", "json", **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def totp(uri, at=None):
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    secret = q["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    step = int((at or time.time()) // 30)
    mac = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    off = mac[-1] & 0x0F
    return "%06d" % ((struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF) % 1_000_000)


def token_request(server, tenant, **form):
    d = server.dev
    return requests.post(f"{d['authority']}/{tenant}/oauth2/v2.0/token", data=form, verify=d["ca_cert"])


def claims(token):
    p = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))


def test_principal_lifecycle_through_the_cli(server):
    p = cli_json(server, "principal", "create", "--name", "ci-app")
    assert uuid.UUID(p["appId"]) and uuid.UUID(p["objectId"]) and len(p["clientSecret"]) >= 32
    listed = cli_json(server, "principal", "list")
    mine = next(x for x in listed if x["appId"] == p["appId"])
    assert "clientSecret" not in json.dumps(mine), "secrets are shown once, at creation"

    cred = ClientSecretCredential(server.dev["tenant_id"], p["appId"], p["clientSecret"], authority=server.dev["authority"],
                                  disable_instance_discovery=True, connection_verify=server.dev["ca_cert"])
    token = cred.get_token(server.dev["audience"] + "/.default").token
    assert claims(token)["oid"] == p["objectId"]

    extra = cli_json(server, "principal", "add-credential", "--id", p["objectId"])
    assert extra["type"] == "secret" and extra["clientSecret"] != p["clientSecret"]

    # Without a role the new principal reads nothing; with a read role on one secret, only that.
    client = SecretClient(server.dev["vault_url"], cred, connection_verify=server.dev["ca_cert"])
    server.client().set_secret("shared-config", remember(f"cfg-{uuid.uuid4().hex}"))
    server.client().set_secret("private-config", remember(f"prv-{uuid.uuid4().hex}"))
    with pytest.raises(HttpResponseError) as e:
        client.get_secret("shared-config")
    assert e.value.status_code == 403
    a = cli_json(server, "role", "assignment", "create", "--role", "Key Vault Secrets User",
                 "--assignee", p["objectId"], "--scope", "/secrets/shared-config")
    assert client.get_secret("shared-config").value.startswith("cfg-")
    with pytest.raises(HttpResponseError) as e:
        client.get_secret("private-config")
    assert e.value.status_code == 403
    assert any(x["name"] == a["name"] for x in cli_json(server, "role", "assignment", "list", "--scope", "/secrets/shared-config"))
    cli_json(server, "role", "assignment", "delete", "--name", a["name"])

    cli_json(server, "principal", "delete", "--id", p["objectId"])
    r = requests.get(f"{server.dev['vault_url']}/secrets", params={"api-version": "7.6"}, verify=server.dev["ca_cert"],
                     headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, "a deleted principal's token stops working at once"


def test_certificate_credential(server, tmp_path):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
                    "-days", "2", "-subj", "/CN=keyfort-ci"], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "both.pem").write_bytes((tmp_path / "key.pem").read_bytes() + (tmp_path / "cert.pem").read_bytes())
    p = cli_json(server, "principal", "create", "--name", "cert-app")
    c = cli_json(server, "principal", "add-credential", "--id", p["objectId"], "--certificate", str(tmp_path / "cert.pem"))
    assert c["type"] == "certificate" and c["x5t"]
    cred = CertificateCredential(server.dev["tenant_id"], p["appId"], certificate_path=str(tmp_path / "both.pem"),
                                 authority=server.dev["authority"], disable_instance_discovery=True,
                                 connection_verify=server.dev["ca_cert"])
    tok = cred.get_token(server.dev["audience"] + "/.default").token
    assert claims(tok)["oid"] == p["objectId"]
    # Another certificate is refused.
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k2.pem", "-out", "c2.pem",
                    "-days", "2", "-subj", "/CN=other"], cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "other.pem").write_bytes((tmp_path / "k2.pem").read_bytes() + (tmp_path / "c2.pem").read_bytes())
    bad = CertificateCredential(server.dev["tenant_id"], p["appId"], certificate_path=str(tmp_path / "other.pem"),
                                authority=server.dev["authority"], disable_instance_discovery=True,
                                connection_verify=server.dev["ca_cert"])
    with pytest.raises(ClientAuthenticationError):
        bad.get_token(server.dev["audience"] + "/.default")


def _certificate(tmp_path, name, not_before, not_after):
    """A self-signed certificate with the given window, and a PEM of key + certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + not_before).not_valid_after(now + not_after)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    (tmp_path / f"{name}.crt").write_bytes(cert_pem)
    (tmp_path / f"{name}.pem").write_bytes(key_pem + cert_pem)
    return tmp_path / f"{name}.crt", tmp_path / f"{name}.pem"


def test_certificate_credential_outside_its_validity_is_refused(server, tmp_path):
    import datetime
    day = datetime.timedelta(days=1)
    p = cli_json(server, "principal", "create", "--name", "cert-window-app")
    expired, _ = _certificate(tmp_path, "expired", -3 * day, -day)
    r = cli(server, "principal", "add-credential", "--id", p["objectId"], "--certificate", str(expired), "-o", "json")
    assert r.returncode != 0 and "expired" in r.stderr
    future, both = _certificate(tmp_path, "future", day, 3 * day)
    cli_json(server, "principal", "add-credential", "--id", p["objectId"], "--certificate", str(future))
    cred = CertificateCredential(server.dev["tenant_id"], p["appId"], certificate_path=str(both),
                                 authority=server.dev["authority"], disable_instance_discovery=True,
                                 connection_verify=server.dev["ca_cert"])
    with pytest.raises(ClientAuthenticationError) as e:
        cred.get_token(server.dev["audience"] + "/.default")
    assert "not yet valid" in str(e.value)


def test_user_password_totp_and_throttling(server):
    name = f"alice-{uuid.uuid4().hex[:6]}@example.com"
    password = f"correct horse {uuid.uuid4().hex[:8]}"
    u = cli_json(server, "user", "create", "--username", name, stdin=password)
    assert u["otpauthUri"].startswith("otpauth://totp/Keyfort:")
    assert "otpauthUri" not in json.dumps(cli_json(server, "user", "list")), "the enrollment URI is shown once"
    t = server.dev["tenant_id"]
    scope = server.dev["audience"] + "/.default"

    r = token_request(server, t, grant_type="password", username=name, password=password, scope=scope)
    assert r.status_code == 200
    assert claims(r.json()["access_token"])["amr"] == ["pwd"]

    code = totp(u["otpauthUri"])
    r = token_request(server, t, grant_type="password", username=name, password=password, otp=code, scope=scope)
    assert r.status_code == 200, r.text
    c = claims(r.json()["access_token"])
    assert "mfa" in c["amr"] and c["idtyp"] == "user" and c["oid"] == u["objectId"]
    r = token_request(server, t, grant_type="password", username=name, password=password, otp=code, scope=scope)
    assert r.status_code == 400 and "already used" in r.json()["error_description"], "a code works once"
    r = token_request(server, t, grant_type="password", username=name, password=password, otp="000000", scope=scope)
    assert r.status_code == 400

    # Repeated failures lock the account for a while, even for the right password.
    for _ in range(5):
        r = token_request(server, t, grant_type="password", username=name, password="wrong password!!", scope=scope)
        assert r.status_code in (400, 429)
    r = token_request(server, t, grant_type="password", username=name, password=password, scope=scope)
    assert r.status_code == 429 and "retry in" in r.json()["error_description"]

    # The sign-ins are audited under the user's name, never with the password.
    lines = (server.data_dir / "audit.jsonl").read_text().splitlines()
    signins = [json.loads(l) for l in lines if f'"upn":"{name}"' in l]
    assert signins and all(r["operationName"] for r in signins)
    assert not any(password in l for l in lines)

    new_uri = cli_json(server, "user", "reset-totp", "--username", name)["otpauthUri"]
    assert new_uri != u["otpauthUri"]
    cli_json(server, "user", "delete", "--username", name)


def test_concurrent_guesses_cannot_outrun_the_lockout(tmp_path):
    """Twenty wrong passwords sent at once: only the five the account may fail
    are checked; the rest wait for them and then find the account locked.
    A server of its own, so the failures do not count against the shared one."""
    server = DevServer(tmp_path / "guesses").start()
    try:
        _concurrent_guesses(server)
    finally:
        server.stop()


def _concurrent_guesses(server):
    from concurrent.futures import ThreadPoolExecutor
    name = f"bob-{uuid.uuid4().hex[:6]}@example.com"
    cli_json(server, "user", "create", "--username", name, stdin=f"right horse {uuid.uuid4().hex[:8]}")
    t, scope = server.dev["tenant_id"], server.dev["audience"] + "/.default"

    def guess(i):
        return token_request(server, t, grant_type="password", username=name, password=f"guess number {i}!",
                             scope=scope)
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(guess, range(20)))
    checked = [r for r in answers if r.status_code == 400]
    refused = [r for r in answers if r.status_code == 429]
    assert len(checked) == 5 and len(refused) == 15, [r.status_code for r in answers]
    assert all("retry in" in r.json()["error_description"] for r in refused)
    cli_json(server, "user", "delete", "--username", name)


def test_login_caches_tokens_for_later_commands(server, tmp_path):
    cache = tmp_path / "login.json"
    r = cli(server, "login", "-o", "json", env={"KEYFORT_LOGIN_CACHE": str(cache)})
    assert r.returncode == 0, r.stderr
    assert oct(cache.stat().st_mode & 0o777) == "0o600"
    assert "client_secret" not in cache.read_text()
    # Later commands need no secret: only the cache and the non-secret settings.
    d = server.dev
    env = {"KEYFORT_LOGIN_CACHE": str(cache), "KEYFORT_DEV_JSON": ""}
    r = subprocess.run([str(BIN), "secret", "list", "-o", "json"], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in {**os.environ, **env}.items() if k != "KEYFORT_DEV_JSON"})
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)


def test_tenants_and_cross_tenant_refusal(server):
    t = cli_json(server, "tenant", "create", "--name", f"customer-{uuid.uuid4().hex[:6]}")
    assert t["admin"]["clientSecret"]
    assert any(x["id"] == t["id"] for x in cli_json(server, "tenant", "list"))
    other = ClientSecretCredential(t["id"], t["admin"]["appId"], t["admin"]["clientSecret"], authority=server.dev["authority"],
                                   disable_instance_discovery=True, connection_verify=server.dev["ca_cert"])
    tok = other.get_token(server.dev["audience"] + "/.default").token
    r = requests.get(f"{server.dev['vault_url']}/secrets", params={"api-version": "7.6"}, verify=server.dev["ca_cert"],
                     headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 401
    assert f'/{server.dev["tenant_id"]}"' in r.headers["WWW-Authenticate"], "the challenge names the vault's tenant"
    # The SDK, pointed at the other tenant's credential, cannot read the vault either.
    with pytest.raises((ClientAuthenticationError, HttpResponseError)):
        SecretClient(server.dev["vault_url"], other, connection_verify=server.dev["ca_cert"]).get_secret("anything")
    # A tenant admin is not a server operator.
    env = {"KEYFORT_TENANT_ID": t["id"], "KEYFORT_CLIENT_ID": t["admin"]["appId"], "KEYFORT_CLIENT_SECRET": t["admin"]["clientSecret"]}
    r = cli(server, "tenant", "list", env=env)
    assert r.returncode == 1 and r.stderr.startswith("error: Forbidden (403)") and r.stderr.count("\n") == 1
    r = cli(server, "tenant", "delete", "--id", t["id"])
    assert r.returncode == 0, r.stderr


def test_a_tenant_admin_cannot_take_over_an_operator(server):
    """The dev principal is a server operator. A User Access Administrator of
    the same tenant may manage principals, but not the operator's."""
    ua = cli_json(server, "principal", "create", "--name", f"ua-{uuid.uuid4().hex[:6]}")
    env = {"KEYFORT_TENANT_ID": server.dev["tenant_id"], "KEYFORT_CLIENT_ID": ua["appId"],
           "KEYFORT_CLIENT_SECRET": ua["clientSecret"]}
    # Just-in-time User Access Administrator over the subscription (no approver, for the test).
    role = "User Access Administrator"
    cli_json(server, "pim", "policy", "set", "--role", role, "--require-approval", "false", "--require-mfa", "false",
             "--subscription-scope")
    cli_json(server, "pim", "eligible", "create", "--role", role, "--assignee", ua["objectId"], "--subscription-scope")
    r = cli(server, "pim", "activate", "--role", role, "--justification", "manage principals", "--duration", "PT30M",
            "--subscription-scope", "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    operator = server.dev["client_id"]
    for args in [("principal", "add-credential", "--id", operator), ("principal", "delete", "--id", operator)]:
        r = cli(server, *args, env=env)
        assert r.returncode == 1 and "server operator" in r.stderr, (args, r.stderr)
    # It may still manage an ordinary principal.
    plain = cli_json(server, "principal", "create", "--name", f"plain-{uuid.uuid4().hex[:6]}")
    r = cli(server, "principal", "add-credential", "--id", plain["objectId"], "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    # The operator's own secret still works.
    assert server.token()
    cli_json(server, "principal", "delete", "--id", plain["objectId"])
    cli_json(server, "principal", "delete", "--id", ua["objectId"])


def test_cli_errors_are_one_line(server):
    for args in [("vault", "show", "--name", "nosuchvault"), ("secret", "show", "--name", "no-such-secret"),
                 ("role", "assignment", "create", "--role", "No Such Role", "--assignee", str(uuid.uuid4())),
                 ("user", "delete", "--username", "nobody@example.com")]:
        r = cli(server, *args)
        assert r.returncode == 1, args
        assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
