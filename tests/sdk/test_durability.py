"""Restarts keep everything; an acknowledged write survives kill -9."""
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor

from conftest import DevServer, remember


def test_restart_keeps_data_and_credentials(tmp_path):
    s = DevServer(tmp_path / "restart").start()
    first = dict(s.dev)
    c = s.client()
    v = remember(f"restart-{uuid.uuid4().hex}")
    c.set_secret("kept", v)
    c.begin_delete_secret("kept").result()
    assert s.stop() == 0, "SIGTERM is a clean shutdown"
    s.start()
    try:
        assert s.dev["client_id"] == first["client_id"]
        assert s.dev["client_secret"] == first["client_secret"]
        assert s.dev["tenant_id"] == first["tenant_id"]
        c = s.client()
        assert "kept" in {d.name for d in c.list_deleted_secrets()}
        c.begin_recover_deleted_secret("kept").result()
        assert c.get_secret("kept").value == v
    finally:
        s.stop()


def test_a_second_process_on_the_same_data_is_refused(tmp_path):
    import subprocess
    from conftest import BIN, free_port
    s = DevServer(tmp_path / "locked").start()
    try:
        r = subprocess.run([str(BIN), "dev", "--data-dir", str(s.data_dir), "--port", str(free_port())],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "in use by another keyfort process" in r.stderr, r.stderr
        assert (s.data_dir / "dev.json").exists(), "the running node's dev.json is left alone"
        assert s.client().set_secret("still-served", remember(f"l-{uuid.uuid4().hex}")).value
    finally:
        s.stop()


def test_acknowledged_writes_survive_kill_9(tmp_path):
    s = DevServer(tmp_path / "crash").start()
    client = s.client()
    values = {f"crash-{i}": remember(f"durable-{uuid.uuid4().hex}") for i in range(120)}

    def put(item):
        name, v = item
        return name, client.set_secret(name, v).properties.version

    with ThreadPoolExecutor(max_workers=16) as pool:
        acked = dict(pool.map(put, values.items()))
    s.stop(signal.SIGKILL)
    s.start()
    try:
        client = s.client()
        for name, version in acked.items():
            got = client.get_secret(name)
            assert got.value == values[name]
            assert got.properties.version == version
    finally:
        s.stop()
