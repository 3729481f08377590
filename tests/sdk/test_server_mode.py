"""`keyfort server --config`: unsafe settings refused by name, `operator init`,
the SDK against a production-style node, SIGHUP certificate reload, SIGTERM."""
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import uuid

import pytest
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from conftest import BIN, DATA_DIRS, OUTPUTS, free_port, remember


def make_pki(d, tag):
    """A CA and a server certificate for *.vault.localhost, with openssl."""
    run = lambda *a: subprocess.run(a, cwd=d, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"ca{tag}.key", "-out", f"ca{tag}.pem", "-days", "30", "-subj", f"/CN=test-ca{tag}",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", f"server-key{tag}.pem", "-out", f"server{tag}.csr", "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:*.vault.localhost,DNS:vault.localhost,DNS:localhost,IP:127.0.0.1\n"
                               "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", f"server{tag}.csr", "-CA", f"ca{tag}.pem", "-CAkey", f"ca{tag}.key",
        "-CAcreateserial", "-out", f"server{tag}.pem", "-days", "30", "-extfile", "ext.cnf")
    os.chmod(d / f"server-key{tag}.pem", 0o600)
    return d / f"ca{tag}.pem"


@pytest.fixture
def node(tmp_path):
    port = free_port()
    ca = make_pki(tmp_path, "")
    data = tmp_path / "data"
    DATA_DIRS.append(data)
    cfg = tmp_path / "keyfort.toml"
    cfg.write_text(f"""
listen = "127.0.0.1:{port}"
dns_suffix = "vault.localhost"
issuer_url = "https://localhost:{port}"
data_dir = "{data}"
[tls]
cert = "{tmp_path}/server.pem"
key = "{tmp_path}/server-key.pem"
[seal]
key_file = "{tmp_path}/root.key"
""")
    return {"dir": tmp_path, "port": port, "ca": ca, "cfg": cfg}


def keyfort(*args, env=None):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def wait_listening(port, proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        assert proc.poll() is None, "server exited early"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not listen")


def peer_cert_issuer(port, ca):
    ctx = ssl.create_default_context(cafile=str(ca))
    with socket.create_connection(("127.0.0.1", port)) as s, ctx.wrap_socket(s, server_hostname="localhost") as t:
        return dict(x[0] for x in t.getpeercert()["issuer"])["commonName"]


def test_unsafe_configuration_is_refused_by_name(node):
    # No root key file yet.
    r = keyfort("server", "--config", str(node["cfg"]))
    assert r.returncode != 0 and "seal.key_file" in r.stderr
    # A root key others can read.
    (node["dir"] / "root.key").write_text("00" * 32 + "\n")
    os.chmod(node["dir"] / "root.key", 0o644)
    r = keyfort("server", "--config", str(node["cfg"]))
    assert r.returncode != 0 and "seal.key_file" in r.stderr and "chmod 600" in r.stderr
    os.chmod(node["dir"] / "root.key", 0o600)
    # Environment overrides, checked the same way.
    r = keyfort("server", "--config", str(node["cfg"]), env={"KEYFORT_ISSUER_URL": f"http://localhost:{node['port']}"})
    assert r.returncode != 0 and "issuer_url" in r.stderr
    r = keyfort("server", "--config", str(node["cfg"]), env={"KEYFORT_ISSUER_URL": f"https://localhost:{node['port']}/x?a=b"})
    assert r.returncode != 0 and "issuer_url" in r.stderr and "'='" in r.stderr
    r = keyfort("server", "--config", str(node["cfg"]), env={"KEYFORT_TOKEN_LIFETIME_SECS": "5"})
    assert r.returncode != 0 and "token_lifetime_secs" in r.stderr
    # A value of the wrong kind names its setting too.
    r = keyfort("server", "--config", str(node["cfg"]), env={"KEYFORT_LISTEN": "0.0.0.0"})
    assert r.returncode != 0 and "listen" in r.stderr.replace("configuration setting 'config'", ""), r.stderr
    # A typo in a setting name is not silently ignored.
    bad = node["dir"] / "typo.toml"
    bad.write_text(node["cfg"].read_text() + "\nlisten_all = true\n")
    r = keyfort("server", "--config", str(bad))
    assert r.returncode != 0 and "listen_all" in r.stderr


def test_operator_init_then_serve_reload_and_stop(node):
    r = keyfort("operator", "init", "--config", str(node["cfg"]), "--vault", "prod-app", "-o", "json")
    assert r.returncode == 0, r.stderr
    init = json.loads(r.stdout)
    assert init["root_key_created"] is True
    assert oct(os.stat(node["dir"] / "root.key").st_mode & 0o777) == "0o600"
    assert init["vault_url"] == f"https://prod-app.vault.localhost:{node['port']}"
    r = keyfort("operator", "init", "--config", str(node["cfg"]), "--vault", "prod-app")
    assert r.returncode != 0 and "already exists" in r.stderr

    log = node["dir"] / "server.log"
    OUTPUTS.append(log)
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(BIN), "server", "--config", str(node["cfg"])], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(node["port"], proc)
        cred = ClientSecretCredential(init["tenant_id"], init["client_id"], init["client_secret"],
                                      authority=init["authority"], disable_instance_discovery=True,
                                      connection_verify=str(node["ca"]))
        client = SecretClient(init["vault_url"], cred, connection_verify=str(node["ca"]))
        v = remember(f"prod-{uuid.uuid4().hex}")
        s = client.set_secret("db", v)
        assert s.properties.recovery_level == "Recoverable", "90 days with purge protection"
        assert s.properties.recoverable_days == 90
        assert client.get_secret("db").value == v

        # SIGHUP: a new certificate from a new CA is served to new connections.
        assert peer_cert_issuer(node["port"], node["ca"]) == "test-ca"
        new_ca = make_pki(node["dir"], "-new")
        os.replace(node["dir"] / "server-new.pem", node["dir"] / "server.pem")
        os.replace(node["dir"] / "server-key-new.pem", node["dir"] / "server-key.pem")
        proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if peer_cert_issuer(node["port"], new_ca) == "test-ca-new":
                    break
            except ssl.SSLError:
                time.sleep(0.1)
        else:
            pytest.fail("the new certificate was not served after SIGHUP")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "SIGTERM is a graceful, clean exit"
