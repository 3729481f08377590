"""Every secrets operation through azure-keyvault-secrets, with its error cases."""
import base64
import json
import time
import uuid

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from conftest import remember


def unique(prefix="s"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def value():
    return remember(f"value-{uuid.uuid4().hex}")


def test_set_and_get_latest_and_by_version(client, server):
    name = unique()
    v1, v2 = value(), value()
    first = client.set_secret(name, v1, content_type="text/plain", tags={"app": "billing", "env": "test"})
    second = client.set_secret(name, v2)
    assert first.value == v1 and second.value == v2
    assert first.properties.version != second.properties.version
    assert len(first.properties.version) == 32
    assert first.id == f"{server.dev['vault_url']}/secrets/{name}/{first.properties.version}"
    assert first.properties.vault_url == server.dev["vault_url"]
    assert first.properties.content_type == "text/plain"
    assert first.properties.tags == {"app": "billing", "env": "test"}
    assert first.properties.enabled is True
    assert first.properties.recovery_level == "CustomizedRecoverable+Purgeable"
    assert first.properties.recoverable_days == 7
    assert first.properties.created_on is not None

    latest = client.get_secret(name)
    assert latest.value == v2 and latest.properties.version == second.properties.version
    old = client.get_secret(name, first.properties.version)
    assert old.value == v1
    assert old.properties.tags == {"app": "billing", "env": "test"}
    # Names are case-insensitive, as in Azure.
    assert client.get_secret(name.upper()).value == v2


def test_get_missing_is_404_with_azure_code(client):
    with pytest.raises(ResourceNotFoundError) as e:
        client.get_secret(unique("missing"))
    assert e.value.status_code == 404
    assert e.value.error.code == "SecretNotFound"
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(unique("missing"), "0" * 32)


def test_list_pages_with_next_link(client):
    prefix = unique("page")
    names = {f"{prefix}-{i:02d}" for i in range(12)}
    for n in names:
        client.set_secret(n, value())
    pages = list(client.list_properties_of_secrets(max_page_size=5).by_page())
    assert len(pages) >= 3
    listed = [p.name for page in pages for p in page]
    assert names <= set(listed)
    assert len(listed) == len(set(listed)), "no item appears twice across pages"
    item = next(p for p in listed if p in names)
    props = next(p for page in client.list_properties_of_secrets().by_page() for p in page if p.name == item)
    assert props.version is None, "list items carry no version"
    assert props.enabled is True



def test_next_link_keeps_the_api_version(server, client):
    for i in range(3):
        client.set_secret(unique("nl"), value())
    r = raw(server, "GET", "/secrets", api_version="7.5", params={"maxresults": 1})
    assert r.status_code == 200, r.text
    assert "api-version=7.5&" in r.json()["nextLink"]


def test_out_content_type_is_checked(server, client):
    name = unique()
    client.set_secret(name, value())
    assert raw(server, "GET", f"/secrets/{name}", params={"outContentType": "application/x-pem-file"}).status_code == 200
    assert_error(raw(server, "GET", f"/secrets/{name}", params={"outContentType": "application/x-bogus"}), 400, "BadParameter")


def test_list_versions(client):
    name = unique()
    versions = {client.set_secret(name, value()).properties.version for _ in range(4)}
    listed = {p.version for p in client.list_properties_of_secret_versions(name, max_page_size=3)}
    assert listed == versions


def test_update_properties_and_disabled_is_forbidden(client):
    name = unique()
    s = client.set_secret(name, value())
    updated = client.update_secret_properties(name, s.properties.version, content_type="application/json",
                                              tags={"owner": "team-a"}, enabled=False)
    assert updated.content_type == "application/json"
    assert updated.tags == {"owner": "team-a"}
    assert updated.enabled is False
    assert updated.updated_on >= updated.created_on
    with pytest.raises(HttpResponseError) as e:
        client.get_secret(name)
    assert e.value.status_code == 403
    assert e.value.error.code == "Forbidden"
    assert "disabled" in e.value.error.message
    # Metadata is still listed, and re-enabling restores access.
    client.update_secret_properties(name, enabled=True)
    assert client.get_secret(name).value == s.value


def test_not_before_and_expiry_are_advisory(client):
    """As in Azure: a secret staged ahead of a rotation, or past its expiry,
    is still read (the attributes are for the application to honour)."""
    from datetime import datetime, timedelta, timezone
    name = unique()
    now = datetime.now(timezone.utc)
    s = client.set_secret(name, value(), not_before=now + timedelta(hours=1))
    assert s.properties.not_before is not None
    assert client.get_secret(name).value == s.value
    client.update_secret_properties(name, not_before=now - timedelta(hours=2), expires_on=now - timedelta(minutes=1))
    got = client.get_secret(name)
    assert got.value == s.value and got.properties.expires_on < now


def test_expiry_round_trips(client):
    from datetime import datetime, timedelta, timezone
    name = unique()
    exp = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    s = client.set_secret(name, value(), expires_on=exp)
    assert client.get_secret(name).properties.expires_on == exp == s.properties.expires_on


def test_soft_delete_recover_and_purge(client):
    name = unique()
    v = value()
    client.set_secret(name, v)
    deleted = client.begin_delete_secret(name).result()
    assert deleted.name == name
    assert deleted.recovery_id.endswith(f"/deletedsecrets/{name}")
    assert deleted.deleted_date is not None
    assert (deleted.scheduled_purge_date - deleted.deleted_date).days == 7
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    got = client.get_deleted_secret(name)
    assert got.properties.version == deleted.properties.version
    assert name in {d.name for d in client.list_deleted_secrets()}

    # The name cannot be reused while deleted.
    with pytest.raises(ResourceExistsError) as e:
        client.set_secret(name, value())
    assert e.value.status_code == 409 and e.value.error.code == "Conflict"

    recovered = client.begin_recover_deleted_secret(name).result()
    assert recovered.name == name
    assert client.get_secret(name).value == v

    client.begin_delete_secret(name).result()
    client.purge_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)
    assert name not in {d.name for d in client.list_deleted_secrets()}
    # After purge the name is free again, with a fresh history.
    client.set_secret(name, value())
    assert len(list(client.list_properties_of_secret_versions(name))) == 1


def test_delete_and_recover_missing(client):
    with pytest.raises(ResourceNotFoundError):
        client.begin_delete_secret(unique("missing")).result()
    with pytest.raises(ResourceNotFoundError):
        client.begin_recover_deleted_secret(unique("missing")).result()
    with pytest.raises(ResourceNotFoundError):
        client.purge_deleted_secret(unique("missing"))


def test_purge_protection_refuses_purge(protected_server):
    client = protected_server.client()
    name = unique()
    s = client.set_secret(name, value())
    assert s.properties.recovery_level == "CustomizedRecoverable"
    client.begin_delete_secret(name).result()
    with pytest.raises(HttpResponseError) as e:
        client.purge_deleted_secret(name)
    assert e.value.status_code == 403
    assert "purge protection" in e.value.error.message
    # Still recoverable, whole.
    client.begin_recover_deleted_secret(name).result()
    assert client.get_secret(name).value == s.value


def test_backup_and_restore(client):
    name = unique()
    vals = [value(), value()]
    for v in vals:
        client.set_secret(name, v, content_type="text/plain")
    blob = client.backup_secret(name)
    assert isinstance(blob, bytes) and len(blob) > 32
    for v in vals:
        assert v.encode() not in blob, "the backup is encrypted"

    with pytest.raises(ResourceExistsError):
        client.restore_secret_backup(blob)

    client.begin_delete_secret(name).result()
    client.purge_deleted_secret(name)
    restored = client.restore_secret_backup(blob)
    assert restored.name == name
    assert client.get_secret(name).value == vals[1]
    assert len(list(client.list_properties_of_secret_versions(name))) == 2

    tampered = bytearray(blob)
    tampered[-5] ^= 0x01
    client.begin_delete_secret(name).result()
    client.purge_deleted_secret(name)
    with pytest.raises(HttpResponseError) as e:
        client.restore_secret_backup(bytes(tampered))
    assert e.value.status_code == 400 and e.value.error.code == "BadParameter"
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)


def test_restore_from_another_tenant_is_refused(client, protected_server):
    other = protected_server.client()
    name = unique()
    other.set_secret(name, value())
    blob = other.backup_secret(name)
    with pytest.raises(HttpResponseError) as e:
        client.restore_secret_backup(blob)
    assert e.value.status_code == 403
    assert "tenant" in e.value.error.message


# --- Bad input, straight over HTTPS --------------------------------------------------

def raw(server, method, path, token=True, api_version="2026-04-01", host=None, **kw):
    url = f"{server.dev['vault_url']}{path}"
    if host:
        url = url.replace("dev.vault.localhost", host)
    params = {**({} if api_version is None else {"api-version": api_version}), **kw.pop("params", {})}
    headers = kw.pop("headers", {})
    if token:
        headers["Authorization"] = f"Bearer {server.token()}"
    return requests.request(method, url, params=params, headers=headers, verify=server.dev["ca_cert"], **kw)


def assert_error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 10
    return body["error"]["message"]


def test_challenge_without_token(server):
    r = raw(server, "GET", "/secrets", token=False)
    assert_error(r, 401, "Unauthorized")
    challenge = r.headers["WWW-Authenticate"]
    assert f'authorization="{server.dev["authority"]}/{server.dev["tenant_id"]}"' in challenge
    assert f'resource="{server.dev["audience"]}"' in challenge


def test_bad_tokens_are_401(server):
    token = server.token()
    header, payload, sig = token.split(".")
    forged = base64.urlsafe_b64encode(b'{"aud":"x","tid":"y"}').decode().rstrip("=")
    for bad in ["garbage", f"{header}.{forged}.{sig}", token[:-4] + "AAAA"]:
        r = raw(server, "GET", "/secrets", token=False, headers={"Authorization": f"Bearer {bad}"})
        assert_error(r, 401, "Unauthorized")
        assert "WWW-Authenticate" in r.headers


def test_api_version_is_required_and_checked(server):
    msg = assert_error(raw(server, "GET", "/secrets", api_version=None), 400, "BadParameter")
    assert "api-version" in msg
    assert_error(raw(server, "GET", "/secrets", api_version="2099-01-01"), 400, "BadParameter")
    for v in ["2025-07-01", "7.0", "7.4", "7.6"]:
        assert raw(server, "GET", "/secrets", api_version=v).status_code == 200


def test_malformed_bodies_change_nothing(server, client):
    name = unique()
    cases = [
        (b"{not json", "BadParameter"),
        (b'"a string"', "BadParameter"),
        (b'{"value": 42}', "BadParameter"),
        (b'{"value": "x", "attributes": {"enabled": "yes"}}', "BadParameter"),
        (b'{"value": "x", "tags": {"a": 1}}', "BadParameter"),
        (b'{"contentType": "text/plain"}', "BadParameter"),
    ]
    for body, code in cases:
        r = raw(server, "PUT", f"/secrets/{name}", data=body, headers={"Content-Type": "application/json"})
        assert_error(r, 400, code)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)


def test_invalid_names_and_oversized_values(server, client):
    for bad in ["under_score", "dot.ted", "x" * 128]:
        r = raw(server, "PUT", f"/secrets/{bad}", json={"value": "v"})
        assert_error(r, 400, "BadParameter")
    name = unique()
    with pytest.raises(HttpResponseError) as e:
        client.set_secret(name, "x" * (25 * 1024 + 1))
    assert e.value.status_code in (400, 413)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    assert client.set_secret(name, remember("y" * (25 * 1024))).value == "y" * 25 * 1024
    # The limit is on the value's UTF-8 bytes, not on the escaped JSON the SDK
    # sends (every non-ASCII character as a six-byte \uXXXX).
    cyrillic = remember("Ж" * 12_800)  # 25,600 bytes
    assert client.set_secret(unique(), cyrillic).value == cyrillic
    with pytest.raises(HttpResponseError) as e:
        client.set_secret(unique(), "Ж" * 12_801)
    assert e.value.status_code == 400


def test_oversized_bodies_are_refused_in_azure_format(server):
    r = raw(server, "PUT", f"/secrets/{unique()}", data=b'{"value": "' + b"x" * 300_000 + b'"}',
            headers={"Content-Type": "application/json"})
    assert_error(r, 413, "RequestEntityTooLarge")
    # A declared length over the limit is refused before the body is sent.
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=server.dev["ca_cert"])
    conn = http.client.HTTPSConnection("dev.vault.localhost", server.port, context=ctx, timeout=30)
    conn.putrequest("POST", "/secrets/restore?api-version=7.6")
    conn.putheader("Authorization", f"Bearer {server.token()}")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(40 * 1024 * 1024))
    conn.endheaders()
    resp = conn.getresponse()
    body = json.loads(resp.read())
    assert resp.status == 413 and body["error"]["code"] == "RequestEntityTooLarge"
    conn.close()


def test_maxresults_bounds(server):
    for bad in ["0", "26", "x"]:
        r = requests.get(f"{server.dev['vault_url']}/secrets", params={"api-version": "7.6", "maxresults": bad},
                         headers={"Authorization": f"Bearer {server.token()}"}, verify=server.dev["ca_cert"])
        assert_error(r, 400, "BadParameter")


def test_unknown_vault_host(server):
    r = raw(server, "GET", "/secrets", host="nosuchvault.vault.localhost")
    msg = assert_error(r, 404, "VaultNotFound")
    assert "nosuchvault" in msg


def test_request_ids(server):
    r = raw(server, "GET", "/secrets", headers={"x-ms-client-request-id": "abc-123"})
    assert r.headers["x-ms-client-request-id"] == "abc-123"
    assert len(r.headers["x-ms-request-id"]) == 36


def test_token_endpoint_rejects_wrong_secret(server):
    d = server.dev
    r = requests.post(f"{d['authority']}/{d['tenant_id']}/oauth2/v2.0/token", verify=d["ca_cert"], data={
        "grant_type": "client_credentials", "client_id": d["client_id"], "client_secret": "wrong",
        "scope": f"{d['audience']}/.default"})
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = requests.get(f"{d['authority']}/{d['tenant_id']}/v2.0/.well-known/openid-configuration", verify=d["ca_cert"])
    assert r.json()["token_endpoint"] == f"{d['authority']}/{d['tenant_id']}/oauth2/v2.0/token"
    keys = requests.get(r.json()["jwks_uri"], verify=d["ca_cert"]).json()["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["alg"] == "RS256"


def test_audit_records_every_request_without_values(server, client):
    name = unique("audited")
    v = value()
    client.set_secret(name, v)
    client.get_secret(name)
    raw(server, "GET", f"/secrets/{name}/", token=False)
    lines = (server.data_dir / "audit.jsonl").read_text().splitlines()
    assert v not in "\n".join(lines)
    import json
    recs = [json.loads(l) for l in lines if name in l]
    ops = [(r["operationName"], r["httpStatus"]) for r in recs]
    assert ("SecretSet", 200) in ops and ("SecretGet", 200) in ops and ("SecretGet", 401) in ops
    allowed = next(r for r in recs if r["operationName"] == "SecretGet" and r["httpStatus"] == 200)
    assert "Key Vault Administrator" in allowed["authorization"]
    assert allowed["identity"]["appId"] == server.dev["client_id"]
