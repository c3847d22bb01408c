"""Lease-based claims (jaxstyle.optim.batch.claims): exclusion, renewal, takeover of dead holders, races."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from conftest import REPO

from jaxstyle.optim.batch.claims import Claims

CLAIMS_PY = REPO / "jaxstyle" / "optim" / "batch" / "claims.py"

# Subprocesses load claims.py by path, its package and jaxstyle.io as bare namespaces: claims.py needs
# only jaxstyle.io.files (stdlib), so they start in milliseconds, without importing JAX.
PRELUDE = f"""
import importlib.util, sys, types
for name, folder in (("jaxstyle", {str(REPO / "jaxstyle")!r}), ("jaxstyle.io", {str(REPO / "jaxstyle" / "io")!r})):
    sys.modules[name] = types.ModuleType(name)
    sys.modules[name].__path__ = [folder]
spec = importlib.util.spec_from_file_location("claims", {str(CLAIMS_PY)!r})
claims = importlib.util.module_from_spec(spec); spec.loader.exec_module(claims)
assert "jax" not in sys.modules
"""


def _python(code: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", PRELUDE + code], env=env, text=True, **kw)


def test_exclusive_until_released(tmp_path):
    with Claims(tmp_path, lease_seconds=1, owner="a") as a, Claims(tmp_path, lease_seconds=1, owner="b") as b:
        assert a.try_claim("u1") and a.holds("u1")
        assert a.try_claim("u1")  # already ours
        assert not b.try_claim("u1") and not b.holds("u1")
        assert b.held_by_others("u1") and not a.held_by_others("u1")
        assert json.loads((tmp_path / "u1.claim").read_text()) == {"owner": "a", "lease_seconds": 1.0}
        a.release("u1")
        assert not a.holds("u1") and not (tmp_path / "u1.claim").exists()
        assert b.try_claim("u1") and b.holds("u1")
        assert a.held_by_others("u1")


def test_finished_key_cannot_be_claimed(tmp_path):
    with Claims(tmp_path, lease_seconds=1, owner="a") as a, Claims(tmp_path, lease_seconds=1, owner="b") as b:
        assert a.try_claim("u") and not a.is_finished("u")
        a.finish("u")
        assert a.is_finished("u") and b.is_finished("u")
        assert not (tmp_path / "u.claim").exists() and (tmp_path / "u.done").exists()
        assert not a.try_claim("u") and not b.try_claim("u") and not a.holds("u")
        assert sorted(p.name for p in tmp_path.iterdir()) == ["u.done"]  # no temp files left


def test_renewal_keeps_lease_alive(tmp_path):
    with Claims(tmp_path, lease_seconds=0.6, owner="a") as a, Claims(tmp_path, lease_seconds=0.6, owner="b") as b:
        assert a.try_claim("k")
        deadline = time.time() + 2.0
        while time.time() < deadline:
            assert not b.try_claim("k")
            assert b.held_by_others("k")
            time.sleep(0.05)
        assert a.holds("k")


def test_close_releases_and_default_owner(tmp_path):
    a = Claims(tmp_path / "new" / "dir", lease_seconds=1)
    assert a.owner.count(":") == 2 and f":{os.getpid()}:" in a.owner
    assert a.try_claim("x") and a.try_claim("y")
    a.close()
    a.close()
    assert not list((tmp_path / "new" / "dir").glob("*.claim"))
    with pytest.raises(RuntimeError):
        a.try_claim("z")


def test_takeover_of_killed_holder(tmp_path):
    proc = _python(
        f"c = claims.Claims({str(tmp_path)!r}, lease_seconds=1.0, owner='victim')\n"
        "assert c.try_claim('k')\nprint('claimed', flush=True)\nimport time; time.sleep(60)\n",
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == "claimed"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Claims(tmp_path, lease_seconds=1.0, owner="heir") as heir:
        assert heir.held_by_others("k")
        assert not heir.try_claim("k")  # lease still live
        time.sleep(1.5)
        assert not heir.held_by_others("k")
        assert heir.try_claim("k") and heir.holds("k")
        assert json.loads((tmp_path / "k.claim").read_text())["owner"] == "heir"
        assert not list(tmp_path.glob("*.stale.*"))  # tombstone removed


def test_a_dead_holder_on_this_host_lapses_at_once(tmp_path):
    proc = _python(
        f"c = claims.Claims({str(tmp_path)!r}, lease_seconds=60.0)\n"
        "assert c.try_claim('k')\nprint('claimed', flush=True)\nimport time; time.sleep(60)\n",
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout.readline().strip() == "claimed"
        with Claims(tmp_path, lease_seconds=60.0) as other:
            assert not other.try_claim("k")  # alive: its 60 s lease holds
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with Claims(tmp_path, lease_seconds=60.0) as heir:
        assert heir.try_claim("k")  # its owner (host:pid) is gone: no need to wait out the lease


def _race_threads(tmp_path, keys, n=8):
    start = threading.Barrier(n)
    wins = {key: [] for key in keys}

    def worker(i):
        with Claims(tmp_path, lease_seconds=5, owner=f"t{i}") as c:
            start.wait()
            for key in keys:
                if c.try_claim(key):
                    wins[key].append(i)
            start.wait()  # everyone done before anyone releases on close

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wins


@pytest.mark.parametrize("left_by_the_dead", [False, True], ids=["fresh-keys", "expired-keys"])
def test_race_threads(tmp_path, left_by_the_dead):
    keys = [f"job-{i:02d}" for i in range(20)]
    for key in keys if left_by_the_dead else []:  # claims left by a dead process long ago
        path = tmp_path / f"{key}.claim"
        path.write_text(json.dumps({"owner": "dead", "lease_seconds": 1.0}))
        os.utime(path, (time.time() - 100, time.time() - 100))
    wins = _race_threads(tmp_path, keys)
    assert all(len(w) == 1 for w in wins.values()), wins
    assert not list(tmp_path.glob("*.stale.*"))


def test_race_processes(tmp_path):
    keys = [f"k{i}" for i in range(20)]
    for key in keys[::2]:  # half of them left by a dead process: taken over
        path = tmp_path / f"{key}.claim"
        path.write_text(json.dumps({"owner": "dead", "lease_seconds": 1.0}))
        os.utime(path, (time.time() - 100, time.time() - 100))
    # Processes start at different times: all begin claiming once `go` exists, and none releases
    # (on close) before every one has claimed, that is before `done` exists.
    (tmp_path / "sync").mkdir()
    go, done = tmp_path / "sync" / "go", tmp_path / "sync" / "done"
    procs = [
        _python(
            f"import json, os, time\nc = claims.Claims({str(tmp_path)!r}, lease_seconds=5, owner='p{i}')\n"
            f"print('ready', flush=True)\nwhile not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
            f"print(json.dumps([k for k in {keys!r} if c.try_claim(k)]), flush=True)\n"
            f"while not os.path.exists({str(done)!r}): time.sleep(0.01)\nc.close()\n",
            stdout=subprocess.PIPE,
        )
        for i in range(4)
    ]
    assert [p.stdout.readline().strip() for p in procs] == ["ready"] * 4
    go.touch()
    won = [json.loads(p.stdout.readline()) for p in procs]
    done.touch()
    assert all(p.wait(timeout=60) == 0 for p in procs)
    assert sorted(k for w in won for k in w) == sorted(keys), won
    assert not list(tmp_path.glob("*.stale.*")) and not list(tmp_path.glob("*.takeover"))


def test_taken_over_holder_sees_loss(tmp_path):
    # A's lease is long so its renewal thread (every 15 s) stays idle: A plays a stalled holder.
    with Claims(tmp_path, lease_seconds=60, owner="a") as a, Claims(tmp_path, lease_seconds=0.5, owner="b") as b:
        assert a.try_claim("k") and a.holds("k")
        old = time.time() - 120
        os.utime(tmp_path / "k.claim", (old, old))
        assert not b.held_by_others("k") and not a.held_by_others("k")
        assert b.try_claim("k") and b.holds("k")
        assert not a.holds("k")
        assert a.held_by_others("k")
        a.release("k")  # must not remove b's claim
        assert b.holds("k")
        time.sleep(0.4)  # b's renewals keep its short lease alive
        assert a.held_by_others("k") and not a.try_claim("k")


def test_renewal_forgets_taken_over_claim(tmp_path):
    with Claims(tmp_path, lease_seconds=0.4, owner="a") as a:
        assert a.try_claim("k")
        (tmp_path / "k.claim").write_text(json.dumps({"owner": "b", "lease_seconds": 0.4}))
        time.sleep(0.3)  # at least one renewal round
        assert "k" not in a._held and not a.holds("k")


@pytest.mark.parametrize("key", ["", "a/b", "../x", "a b", "é", ".", "..", "k\n", None])
def test_bad_key_raises(tmp_path, key):
    with Claims(tmp_path, lease_seconds=1) as c:
        with pytest.raises(ValueError):
            c.try_claim(key)
        with pytest.raises(ValueError):
            c.finish(key)
        with pytest.raises(ValueError):
            c.is_finished(key)


def test_leftover_takeover_lock_is_broken(tmp_path):
    claim, lock = tmp_path / "k.claim", tmp_path / "k.takeover"
    claim.write_text(json.dumps({"owner": "dead", "lease_seconds": 0.5}))
    lock.touch()  # a taker killed mid-takeover
    old = time.time() - 100
    os.utime(claim, (old, old))
    with Claims(tmp_path, lease_seconds=60, owner="a") as a:
        assert not a.try_claim("k") and lock.exists()  # a live takeover lock: wait for it
        os.utime(lock, (old, old))
        assert not a.try_claim("k") and not lock.exists()  # stale lock broken; next pass claims
        assert a.try_claim("k") and a.holds("k")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
