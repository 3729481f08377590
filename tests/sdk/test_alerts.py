"""Alert rules over the audit stream: built-in rules for the dev vault, once
per window per address, any purge attempt, and a webhook channel."""
import time
import uuid

import requests

from test_events import Receiver
from test_identity import cli, cli_json


def history(server, rule):
    return [h for h in cli_json(server, "alert", "history") if h["ruleName"] == rule]


def wait_for(fn, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.2)
    return fn()


def test_builtin_rules_fire_once_per_window(server):
    names = {r["name"] for r in cli_json(server, "alert", "rule", "list")}
    assert {"refused-requests-from-one-address", "purge-attempt", "new-role-assignment", "pim-activation"} <= names
    before = len(history(server, "refused-requests-from-one-address"))
    url = f"{server.dev['vault_url']}/secrets/nope/"
    for _ in range(25):
        assert requests.get(url, params={"api-version": "7.6"}, verify=server.dev["ca_cert"]).status_code == 401
    wait_for(lambda: len(history(server, "refused-requests-from-one-address")) > before)
    after = history(server, "refused-requests-from-one-address")
    assert len(after) >= 1 and len(after) - before <= 1, "once per window and address"
    assert after[-1]["group"] == "127.0.0.1" and after[-1]["count"] > 10

    purges = len(history(server, "purge-attempt"))
    r = cli(server, "secret", "purge", "--name", f"never-{uuid.uuid4().hex[:6]}")
    assert r.returncode == 1
    assert wait_for(lambda: len(history(server, "purge-attempt")) == purges + 1), "any purge attempt fires"


def test_webhook_channel(server, client):
    rx = Receiver()
    rule = cli_json(server, "alert", "rule", "create", "--name", "any-set", "--operation", "SecretSet",
                    "--result", "Success", "--webhook", rx.url, "--cooldown-secs", "0")
    client.set_secret(f"al-{uuid.uuid4().hex[:6]}", "x")
    import json
    got = rx.wait(1)
    assert got and json.loads(got[0][1])["ruleName"] == "any-set"
    cli_json(server, "alert", "rule", "delete", "--id", rule["id"])
    r = cli(server, "alert", "rule", "create", "--name", "bad", "--window-secs", "0")
    assert r.returncode == 1 and "windowSecs" in r.stderr
