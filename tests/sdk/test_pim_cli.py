"""A full just-in-time round trip through the CLI, as docs/access.md shows it:
policy, eligibility, MFA sign-in, activation, refused self-approval, approval by
another user, access while active, revocation."""
import json
import os
import subprocess
import uuid

from conftest import BIN
from test_identity import cli_json, totp


def as_user(cache, *args, stdin=None):
    """Runs the CLI with only a login cache (no client secret anywhere)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYFORT_")}
    env["KEYFORT_LOGIN_CACHE"] = str(cache)
    return subprocess.run([str(BIN), *args], input=stdin, capture_output=True, text=True, timeout=60, env=env)


def login(server, cache, user, password):
    env = {**os.environ, "KEYFORT_DEV_JSON": str(server.data_dir / "dev.json"), "KEYFORT_LOGIN_CACHE": str(cache)}
    r = subprocess.run([str(BIN), "login", "--username", user["username"], "--otp", totp(user["otpauthUri"])],
                       input=password, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, r.stderr


def test_pim_round_trip_through_the_cli(server, tmp_path):
    pw = f"a long password {uuid.uuid4().hex[:6]}"
    alice = cli_json(server, "user", "create", "--username", f"alice-{uuid.uuid4().hex[:6]}", stdin=pw)
    bob = cli_json(server, "user", "create", "--username", f"bob-{uuid.uuid4().hex[:6]}", stdin=pw)
    role = "Key Vault Secrets Officer"

    policy = cli_json(server, "pim", "policy", "set", "--role", role, "--approver", bob["objectId"], "--max-duration", "PT2H")
    assert policy["properties"]["approvers"] == [bob["objectId"]] and policy["properties"]["requireMfa"] is True
    cli_json(server, "pim", "eligible", "create", "--role", role, "--assignee", alice["objectId"])

    a_cache, b_cache = tmp_path / "alice.json", tmp_path / "bob.json"
    login(server, a_cache, alice, pw)
    r = as_user(a_cache, "secret", "list")
    assert r.returncode == 1 and "Forbidden (403)" in r.stderr, "eligible is not active"

    r = as_user(a_cache, "pim", "activate", "--role", role, "--justification", "rotate the db password", "--duration", "PT30M", "-o", "json")
    assert r.returncode == 0, r.stderr
    req = json.loads(r.stdout)
    assert req["properties"]["status"] == "PendingApproval"
    r = as_user(a_cache, "pim", "approve", "--id", req["name"])
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "own requester" in r.stderr

    login(server, b_cache, bob, pw)
    r = as_user(b_cache, "pim", "approve", "--id", req["name"], "--justification", "ok", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["properties"]["status"] == "Provisioned"

    assert as_user(a_cache, "secret", "list").returncode == 0, "active now"
    listed = json.loads(as_user(a_cache, "pim", "requests", "-o", "json").stdout)
    assert any(x["name"] == req["name"] and x["properties"]["status"] == "Provisioned" for x in listed)

    r = as_user(a_cache, "pim", "revoke", "--id", req["name"], "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["properties"]["status"] == "Revoked"
    assert as_user(a_cache, "secret", "list").returncode == 1, "revoked"
