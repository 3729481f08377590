"""The audit trail: one record per request, a hash chain that `keyfort audit
verify` checks (online and offline), and tampering found at the right line."""
import json
import signal
import shutil
import uuid

import requests

from conftest import remember
from test_identity import cli, cli_json


def records(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def test_one_record_per_request_and_the_chain_verifies(server):
    log = server.data_dir / "audit.jsonl"
    before = [r for r in records(log) if "type" not in r]
    name = f"audited-{uuid.uuid4().hex[:8]}"
    # Raw HTTP, each request with its own correlation id, so the test knows
    # exactly which requests were made: allowed, refused, and unroutable.
    url = f"{server.dev['vault_url']}/secrets/{name}"
    token = server.token()
    kw = {"params": {"api-version": "7.6"}, "verify": server.dev["ca_cert"]}
    sent = []

    def h(auth=True):
        cid = str(uuid.uuid4())
        sent.append(cid)
        return {"x-ms-client-request-id": cid, **({"Authorization": f"Bearer {token}"} if auth else {})}

    for i in range(12):
        assert requests.put(url, json={"value": remember(f"v-{uuid.uuid4().hex}")}, headers=h(), **kw).status_code == 200
        assert requests.get(url + "/", headers=h(), **kw).status_code == 200
    for _ in range(5):
        assert requests.get(url + "/", headers=h(False), **kw).status_code == 401
    assert requests.delete(url + "/x/y", headers=h(), **kw).status_code == 404
    assert requests.put(url, data=b"{bad json", headers=h(), **kw).status_code == 400
    after = [r for r in records(log) if "type" not in r]
    seen = [r["correlationId"] for r in after[len(before):] if r.get("correlationId") in sent]
    assert sorted(seen) == sorted(sent), "exactly one record per request"
    # Shaped after Azure's AuditEvent.
    mine = {r["correlationId"]: r for r in after[len(before):] if r.get("correlationId") in sent}
    put = mine[sent[0]]
    assert put["category"] == "AuditEvent" and put["operationName"] == "SecretSet"
    assert put["operationVersion"] == "7.6" and put["resultSignature"] == "OK" and put["httpStatus"] == 200
    assert put["resourceId"].endswith("/providers/Microsoft.KeyVault/vaults/dev")
    assert put["resourceId"].startswith(f"/subscriptions/{server.dev['subscription_id']}/resourceGroups/")
    assert put["identity"]["appId"] == server.dev["client_id"] and put["object"] == f"secrets/{name}"
    assert put["authorization"], "the assignment that allowed it"
    refused = mine[sent[24]]
    assert refused["resultType"] == "Failure" and refused["resultSignature"] == "Unauthorized" and refused["reason"]
    assert [r["sequence"] for r in after] == sorted(r["sequence"] for r in after)

    # A checkpoint is written every 100 records in dev mode: make sure one exists.
    for _ in range(101):
        if any(r.get("type") == "checkpoint" for r in records(log)):
            break
        requests.get(url + "/", headers=h(), **kw)
    report = cli_json(server, "audit", "verify")
    assert report["firstBreak"] is None and report["signaturesChecked"] is True
    assert report["checkpoints"] >= 1, "signed checkpoints are written"
    offline = cli_json(server, "audit", "verify", "--path", str(server.data_dir))
    assert offline["firstBreak"] is None and offline["records"] >= len(after)


def test_tampering_is_found(server, tmp_path):
    log = server.data_dir / "audit.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) > 20

    def verify_copy(mutate):
        d = tmp_path / uuid.uuid4().hex
        d.mkdir()
        copy = d / "audit.jsonl"
        mutated = list(lines)
        mutate(mutated)
        copy.write_text("\n".join(mutated) + "\n")
        return cli(server, "audit", "verify", "--path", str(d))

    ok = verify_copy(lambda l: None)
    assert ok.returncode == 0, ok.stderr

    def edit(l):
        rec = json.loads(l[10]); rec["httpStatus"] = 200 if rec["httpStatus"] != 200 else 403; l[10] = json.dumps(rec)
    cases = [
        (edit, ":11 ", "does not match its hash"),
        (lambda l: l.pop(10), ":11 ", "missing"),
        (lambda l: l.insert(5, l.pop(10)), ":6 ", ""),
    ]
    for mutate, where, word in cases:
        r = verify_copy(mutate)
        assert r.returncode == 1, r.stdout
        assert where in r.stderr and word in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1


def test_truncation_is_found_by_the_server(tmp_path):
    from conftest import DevServer
    s = DevServer(tmp_path / "trunc").start()
    try:
        c = s.client()
        for i in range(110):  # past the first checkpoint (every 100 records)
            c.set_secret(f"t{i}", remember(f"tv-{uuid.uuid4().hex}"))
        report = cli_json(s, "audit", "verify")
        assert report["firstBreak"] is None and report["checkpoints"] >= 1
        jwks = requests.get(f"{s.dev['authority']}/{s.dev['tenant_id']}/discovery/v2.0/keys",
                            verify=s.dev["ca_cert"]).json()
    finally:
        s.stop()
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    offline = ["audit", "verify", "--path", str(s.data_dir), "--jwks", str(tmp_path / "jwks.json")]
    whole = cli_json(s, *offline)
    assert whole["firstBreak"] is None and whole["signaturesChecked"] is True and whole["checkpoints"] >= 1
    head = f"{whole['lastSequence']}:{whole['lastHash']}"
    # Offline, with a head kept from an earlier run, a cut tail is found too.
    log = s.data_dir / "audit.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:-2]) + "\n")
    r = cli(s, *offline, "--head", head)
    assert r.returncode == 1 and "truncated" in r.stderr, r.stderr
    log.write_text("\n".join(lines) + "\n")
    # A checkpoint whose signature does not check out is a break.
    forged = [json.loads(l) for l in lines]
    cp = next(i for i, r in enumerate(forged) if r.get("type") == "checkpoint")
    other = {"keys": [dict(jwks["keys"][0], kid="someone-else")]}
    (tmp_path / "other.json").write_text(json.dumps(other))
    r = cli(s, "audit", "verify", "--path", str(s.data_dir), "--jwks", str(tmp_path / "other.json"))
    assert r.returncode == 1 and str(forged[cp]["sequence"]) in r.stderr, r.stderr
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[:20]) + "\n")
    s.start()
    try:
        r = cli(s, "audit", "verify")
        assert r.returncode == 1 and ("truncated" in r.stderr or "cut and rewritten" in r.stderr), r.stderr
    finally:
        s.stop()


def test_audit_query_filters_and_visibility(server, client):
    name = f"q-{uuid.uuid4().hex[:8]}"
    client.set_secret(name, remember(f"q-{uuid.uuid4().hex}"))
    client.get_secret(name)
    got = cli_json(server, "audit", "query", "--vault-name", "dev", "--operation", "SecretGet", "--result", "Success", "--limit", "1000")
    assert any(r["object"] == f"secrets/{name}" for r in got)
    assert all(r["operationName"] == "SecretGet" and r["resultType"] == "Success" for r in got)
    assert cli_json(server, "audit", "query", "--from", "2999-01-01T00:00:00Z") == []
    # Another tenant's admin reads only its own tenant's records.
    t = cli_json(server, "tenant", "create", "--name", f"other-{uuid.uuid4().hex[:6]}")
    env = {"KEYFORT_TENANT_ID": t["id"], "KEYFORT_CLIENT_ID": t["admin"]["appId"], "KEYFORT_CLIENT_SECRET": t["admin"]["clientSecret"],
           "KEYFORT_SUBSCRIPTION_ID": t["subscriptionId"]}
    r = cli(server, "audit", "query", "--limit", "10000", "-o", "json", env=env)
    assert r.returncode == 0, r.stderr
    mine = json.loads(r.stdout)
    assert mine and all(x["identity"]["tenantId"] == t["id"] for x in mine), "no record of the dev tenant leaks"


def _ignore_file_size_signal():
    # A write past RLIMIT_FSIZE raises SIGXFSZ, which would kill the server;
    # ignored (an ignored signal stays ignored across exec), the write fails
    # with EFBIG instead, as it would on a full disk.
    import signal
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_held_record_survives_kill_9(tmp_path):
    """A request ran, its record could not be written (503), and the process
    is killed before the file works again: the record was kept in the
    database, and the restarted server chains it first, exactly once."""
    import resource
    from conftest import DevServer
    s = DevServer(tmp_path / "heldkill", preexec_fn=_ignore_file_size_signal).start()
    c = s.client()
    c.set_secret("before", remember(f"bv-{uuid.uuid4().hex}"))
    url = f"{s.dev['vault_url']}/secrets"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {s.token()}"
    http.trust_env = False
    http.verify = s.dev["ca_cert"]
    for _ in range(600):
        assert http.get(url, params={"api-version": "7.6"}).status_code == 200
    log = s.data_dir / "audit.jsonl"
    size = log.stat().st_size
    resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (size + 40, resource.RLIM_INFINITY))
    value = remember(f"held-{uuid.uuid4().hex}")
    r = http.put(f"{url}/during", params={"api-version": "7.6"}, json={"value": value})
    assert r.status_code == 503, r.text
    s.stop(signal.SIGKILL)

    s.start()
    try:
        after = [r for r in records(log) if r.get("type") != "checkpoint"]
        held = [r for r in after if r.get("object") == "secrets/during"]
        assert len(held) == 1, "chained once"
        assert held[0]["operationName"] == "SecretSet" and held[0]["httpStatus"] == 200
        assert "answered 503" in held[0]["reason"]
        before_restart = [r for r in after if r["sequence"] < held[0]["sequence"]]
        assert all(r.get("object") != "secrets/during" for r in before_restart)
        assert s.client().get_secret("during").value == value
        assert cli_json(s, "audit", "verify")["firstBreak"] is None
        s.stop()
        s.start()
        again = [r for r in records(log) if r.get("object") == "secrets/during" and r["operationName"] == "SecretSet"]
        assert len(again) == 1, "a second restart does not chain it again"
    finally:
        s.stop()


def test_a_failing_sink_fails_requests_closed_and_recovers(tmp_path):
    """The audit file stops taking writes (a file size limit set on the
    running server): the request whose record cannot be written gets 503,
    later requests are refused before they run, no half line is left, and
    once the file works again the held record is chained first."""
    import resource
    from conftest import DevServer
    s = DevServer(tmp_path / "sinkfail", preexec_fn=_ignore_file_size_signal).start()
    try:
        c = s.client()
        c.set_secret("before", remember(f"bv-{uuid.uuid4().hex}"))
        url = f"{s.dev['vault_url']}/secrets"
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {s.token()}"
        http.trust_env = False  # the session's CA, not one from the environment
        http.verify = s.dev["ca_cert"]
        # Grow the audit file past the database files, so a limit just above
        # its size stops the audit file and nothing else.
        for _ in range(600):
            assert http.get(url, params={"api-version": "7.6"}).status_code == 200
        log = s.data_dir / "audit.jsonl"
        db_files = [p for p in s.data_dir.iterdir() if p.name.startswith("keyfort.db")]
        size = log.stat().st_size
        assert all(p.stat().st_size < size - 64 * 1024 for p in db_files), [(p.name, p.stat().st_size) for p in db_files]
        resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (size + 40, resource.RLIM_INFINITY))

        value = remember(f"held-{uuid.uuid4().hex}")
        r = http.put(f"{url}/during", params={"api-version": "7.6"}, json={"value": value})
        assert r.status_code == 503 and "audit" in r.json()["error"]["message"], r.text
        r = http.get(url, params={"api-version": "7.6"})
        assert r.status_code == 503, "nothing runs while no sink can record"
        assert log.stat().st_size == size, "no half-written record is left"
        assert all(json.loads(l) for l in log.read_text().splitlines())

        resource.prlimit(s.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert http.get(f"{url}/before", params={"api-version": "7.6"}).status_code == 200
        tail = [r for r in records(log) if r.get("type") != "checkpoint"][-3:]
        assert tail[0]["operationName"] == "SecretSet" and tail[0]["object"] == "secrets/during"
        assert tail[0]["httpStatus"] == 200, "the held record says what the request did"
        assert "answered 503" in tail[0]["reason"], "and what its client was told"
        assert tail[1]["type"] == "sinkCheck" and tail[2]["operationName"] == "SecretGet"
        assert http.get(f"{url}/during", params={"api-version": "7.6"}).json()["value"] == value, \
            "the request ran before its record failed: its effect stands, and now its record too"
        report = cli_json(s, "audit", "verify")
        assert report["firstBreak"] is None
        assert value not in log.read_text()
    finally:
        s.stop()


def test_a_cut_tail_is_found_by_the_running_server(tmp_path):
    """No restart, no checkpoint yet: the server knows the last record it wrote."""
    from conftest import DevServer
    s = DevServer(tmp_path / "tail").start()
    try:
        c = s.client()
        for i in range(5):
            c.set_secret(f"tail{i}", remember(f"tv-{uuid.uuid4().hex}"))
        assert cli_json(s, "audit", "verify")["firstBreak"] is None
        log = s.data_dir / "audit.jsonl"
        lines = log.read_text().splitlines()
        log.write_text("\n".join(lines[:-3]) + "\n")
        r = cli(s, "audit", "verify")
        assert r.returncode == 1 and ("truncated" in r.stderr or "missing" in r.stderr), r.stderr
    finally:
        s.stop()


def test_new_options_refuse_bad_input(server, tmp_path):
    """`audit verify --head` takes SEQUENCE:HASH; `dev --audit-webhook` takes
    https (or http to loopback) only, and refuses before starting."""
    import subprocess
    from conftest import BIN, free_port
    r = cli(server, "audit", "verify", "--path", str(server.data_dir), "--head", "12:not-a-hash")
    assert r.returncode != 0 and "SEQUENCE:HASH" in r.stderr, r.stderr
    r = cli(server, "audit", "verify", "--path", str(server.data_dir), "--jwks", str(tmp_path / "missing.json"))
    assert r.returncode != 0
    r = subprocess.run([str(BIN), "dev", "--data-dir", str(tmp_path / "hook"), "--port", str(free_port()),
                        "--audit-webhook", "http://example.com/hook"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "--audit-webhook" in r.stderr and "https" in r.stderr, r.stderr
