"""State files across restarts, seed files, the python -m CLI, and HTTPS mode."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from devkit import SimCtl
from zstack_iso.simulator import SeedError, load_seed_file, run_simulator
from zstack_iso.simulator.seed import DEFAULT_SEED_PATH

ROOT = Path(__file__).resolve().parents[1]
RESCUE = "rescue.iso"
# Written by the simulator before ZStackNode was split by concern (state format 1), from the default seed:
# rescue.iso attached to web-1 (job aaa...a), virtio-win-0.1.240.iso deleted (bbb...b), old-1 expunged (ccc...c).
STATE_FORMAT_1 = ROOT / "tests" / "data" / "state-format-1.json"


def attach_path(sim: SimCtl, vm: str = "web-1") -> str:
    return f"vm-instances/{sim.vm(vm)}/iso/{sim.image(RESCUE)}"


def test_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    job = uuid.uuid4().hex
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        session = sim.login()
        status, _ = sim.zstack("POST", attach_path(sim), headers={"X-Job-UUID": job})
        assert status == 200
        sim.zstack("PUT", f"vm-instances/{sim.vm('old-1')}/actions", json={"expungeVmInstance": {}})
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        assert sim.cdroms(sim.vm("web-1"))[0]["isoUuid"] == sim.image(RESCUE)
        assert "old-1" not in [v["name"] for v in sim.inventory()["vmInstances"]]
        # the session, the job's result and its used X-Job-UUID all persist
        assert requests.get(f"{sim.api}/accounts/sessions/{session}/valid", timeout=5).json() == {"valid": True}
        poll = requests.get(f"{sim.api}/api-jobs/{job}", timeout=5)
        assert poll.status_code == 200 and poll.json()["inventory"]["name"] == "web-1"
        r = sim.submit("POST", attach_path(sim, "web-2"), headers={"X-Job-UUID": job})
        assert r.status_code == 400 and "Duplicate job uuid" in r.text
    assert not [p for p in tmp_path.iterdir() if p.name != "state.json"]  # no temporary file left behind


def test_a_state_file_written_by_an_earlier_simulator_still_loads(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    shutil.copy(STATE_FORMAT_1, state)
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        assert len(s.node.sessions) == 1  # the admin session the jobs ran with
        poll = requests.get(f"{sim.api}/api-jobs/{'a' * 32}", timeout=5)
        assert poll.status_code == 200 and poll.json()["inventory"]["name"] == "web-1"
        assert [c.get("isoUuid") for c in sim.cdroms(sim.vm("web-1"))][0] == sim.image(RESCUE)
        assert sorted(v["name"] for v in sim.inventory()["vmInstances"]) == ["db-1", "legacy-1", "web-1", "web-2"]
        image = sim.zstack("GET", f"images/{sim.image('virtio-win-0.1.240.iso')}")[1]["inventories"][0]
        assert image["status"] == "Deleted"
        assert {r["status"] for r in image["backupStorageRefs"]} == {"Deleted"}


def test_job_in_flight_at_a_stop_is_lost_and_its_vm_state_settles(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with run_simulator(state_file=state, job_seconds=5) as s:
        sim = SimCtl(s.url)
        location = sim.submit("PUT", f"vm-instances/{sim.vm('web-1')}/actions", json={"stopVmInstance": {}}).json()[
            "location"
        ]
        time.sleep(0.1)
        assert sim.vm_inventory(sim.vm("web-1"))["state"] == "Stopping"
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        assert requests.get(location.replace(location.split("/zstack")[0], s.url), timeout=5).status_code == 404
        assert sim.vm_inventory(sim.vm("web-1"))["state"] == "Running"


def test_reset_with_a_state_file_returns_to_the_seed(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        sim.zstack("POST", attach_path(sim))
        sim.reset()
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        assert sim.cdroms(sim.vm("web-1"))[0].get("isoUuid") is None


def test_default_seed_is_deterministic_and_matches_the_issue() -> None:
    first, second = load_seed_file(), load_seed_file(DEFAULT_SEED_PATH)
    assert first == second
    vms = {v["name"]: v for v in first["vmInstances"].values()}
    cdroms = [c["vmInstanceUuid"] for c in first["vmCdRoms"].values()]
    expected = {"web-1": ("Running", 3), "web-2": ("Running", 1), "db-1": ("Stopped", 2), "legacy-1": ("Running", 0),
                "old-1": ("Destroyed", 1)}  # fmt: skip
    assert {n: (v["state"], cdroms.count(v["uuid"])) for n, v in vms.items()} == expected
    images = {i["name"]: (i["mediaType"], i["state"], i["status"]) for i in first["images"].values()}
    assert images == {
        "ubuntu-22.04-server.iso": ("ISO", "Enabled", "Ready"),
        "virtio-win-0.1.240.iso": ("ISO", "Enabled", "Ready"),
        "rescue.iso": ("ISO", "Enabled", "Ready"),
        "drivers-disabled.iso": ("ISO", "Disabled", "Ready"),
        "installer-downloading.iso": ("ISO", "Enabled", "Downloading"),
        "centos-7-root": ("RootVolumeTemplate", "Enabled", "Ready"),
    }


def test_custom_seed_file_replaces_the_inventory(tmp_path: Path) -> None:
    seed = {
        "accounts": [{"name": "admin", "password": "pw2", "type": "SystemAdmin"}],
        "zones": [{"name": "z"}],
        "clusters": [{"name": "c"}],
        "hosts": [{"name": "h"}],
        "primaryStorages": [{"name": "ps"}],
        "backupStorages": [{"name": "bs"}],
        "images": [{"name": "tools.iso", "mediaType": "ISO", "backupStorages": ["bs"]}],
        "vmInstances": [{"name": "solo", "cdRoms": [{}, {"iso": "tools.iso"}]}],
    }
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with run_simulator(seed=path, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        with pytest.raises(AssertionError):
            sim.login()  # the default admin password is gone
        inv = sim.inventory()
        assert [v["name"] for v in inv["vmInstances"]] == ["solo"]
        assert [c.get("isoUuid") for c in sim.cdroms(sim.vm("solo"))] == [None, sim.image("tools.iso")]


@pytest.mark.parametrize(
    ("seed", "words"),
    [
        ([], "JSON object"),
        ({"vmInstances": [{"name": "x"}]}, "host"),
        ({"images": [{"name": "i", "mediaType": "Floppy"}]}, "mediaType"),
        ({"zones": [{"name": "z", "uuid": "not-hex"}]}, "uuid"),
    ],
)
def test_bad_seed_is_refused_with_a_reason(tmp_path: Path, seed, words: str) -> None:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(seed))
    with pytest.raises(SeedError, match=words):
        load_seed_file(path)


# ---- the CLI


def start_cli(*args: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "zstack_iso.simulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    first = proc.stdout.readline().rstrip("\n")
    assert first.startswith("ZStack simulator listening on http"), first
    return proc, first.rsplit(" ", 1)[1]


def test_cli_prints_the_url_first_logs_to_stderr_and_stops_on_sigterm() -> None:
    proc, url = start_cli("--job-seconds", "0.01")
    try:
        assert url.startswith("http://127.0.0.1:")
        r = requests.put(f"{url}/zstack/v1/management-nodes/actions", json={"getVersion": {}}, timeout=5)
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        out, err = proc.communicate(timeout=5)
        assert "management-nodes/actions" in err and "management-nodes/actions" not in out
    finally:
        proc.kill()


def test_cli_strict_attach_option_sets_the_config() -> None:
    proc, url = start_cli("--strict-attach", "--quiet")
    try:
        assert requests.get(f"{url}/_simulator/config", timeout=5).json()["strictAttach"] is True
    finally:
        proc.kill()
        proc.communicate(timeout=5)


def test_cli_state_file_survives_kill_9_in_the_middle_of_writes(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc, url = start_cli("--job-seconds", "0.005", "--state", str(state), "--quiet")
    sim = SimCtl(url)
    acked: list[str] = []  # the last operation the simulator confirmed
    stop = threading.Event()

    def churn() -> None:
        try:
            while not stop.is_set():
                for op in ("attach", "detach"):
                    if op == "attach":
                        status, _ = sim.zstack("POST", attach_path(sim))
                    else:
                        status, _ = sim.zstack("DELETE", f"vm-instances/{sim.vm('web-1')}/iso")
                    if status == 200:
                        acked.append(op)
        except Exception:  # the process was killed under us
            pass

    worker = threading.Thread(target=churn)
    worker.start()
    time.sleep(1.0)
    proc.kill()  # SIGKILL: no chance to finish a write
    proc.wait(timeout=5)
    stop.set()
    worker.join(timeout=10)
    assert len(acked) > 5
    proc2, url2 = start_cli("--job-seconds", "0.005", "--state", str(state), "--quiet")
    try:
        sim2 = SimCtl(url2)
        attached = sim2.cdroms(sim2.vm("web-1"))[0].get("isoUuid") == sim2.image(RESCUE)
        # whatever was confirmed is on disk; at most the one unconfirmed operation after it also landed
        assert attached in ((acked[-1] == "attach"), (acked[-1] == "detach"))
        json.loads(state.read_text())
    finally:
        proc2.send_signal(signal.SIGTERM)
        proc2.wait(timeout=10)


# ---- HTTPS


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def test_https_mode_serves_the_api_and_job_locations_over_tls(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    with run_simulator(tls_cert=cert, tls_key=key, job_seconds=0.01) as s:
        assert s.url.startswith("https://127.0.0.1:")
        sim = SimCtl(s.url, verify=str(cert))
        r = sim.submit("POST", attach_path(sim))
        assert r.json()["location"].startswith("https://")
        assert sim.wait(r.json()["location"])[0] == 200
        with pytest.raises(requests.exceptions.SSLError):
            requests.put(f"{s.url}/zstack/v1/management-nodes/actions", json={"getVersion": {}}, timeout=5)
        # a plain-HTTP client on the TLS port does not disturb the server
        with pytest.raises(requests.ConnectionError):
            requests.get(s.url.replace("https", "http") + "/zstack/v1/vm-instances", timeout=5)
        assert sim.zstack("GET", "vm-instances")[0] == 200


def test_stopped_simulator_cuts_open_keep_alive_connections(tmp_path: Path) -> None:
    with run_simulator(state_file=tmp_path / "s.json", job_seconds=0.01) as s:
        http = requests.Session()
        url = f"{s.url}/zstack/v1/management-nodes/actions"
        assert http.put(url, json={"getVersion": {}}, timeout=5).status_code == 200
    with pytest.raises(requests.ConnectionError):
        http.put(url, json={"getVersion": {}}, timeout=5)


def test_deleted_images_and_iso_order_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        for iso in ("ubuntu-22.04-server.iso", RESCUE):
            sim.zstack("POST", f"vm-instances/{sim.vm('web-1')}/iso/{sim.image(iso)}")
        sim.change_iso_order("web-1", RESCUE)
        sim.delete_image("virtio-win-0.1.240.iso")
        internal_id = sim.vm_inventory(sim.vm("web-1"))["internalId"]
    with run_simulator(state_file=state, job_seconds=0.01) as s:
        sim = SimCtl(s.url)
        assert [c.get("isoUuid") for c in sim.cdroms(sim.vm("web-1"))][:2] == [
            sim.image(RESCUE),
            sim.image("ubuntu-22.04-server.iso"),
        ]
        image = sim.zstack("GET", f"images/{sim.image('virtio-win-0.1.240.iso')}")[1]["inventories"][0]
        assert image["status"] == "Deleted"
        assert sim.vm_inventory(sim.vm("web-1"))["internalId"] == internal_id
