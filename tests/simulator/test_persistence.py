"""State files across restarts, seed files, the python -m CLI, and HTTPS mode."""

from __future__ import annotations

import json
import os
import re
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

from devkit import PROJECT_ROOT, SimCtl
from zstack_iso.simulator import SeedError, SimulatorStartError, load_seed_file, run_simulator
from zstack_iso.simulator.seed import DEFAULT_SEED_PATH

RESCUE = "rescue.iso"
# Written by the simulator before ZStackNode was split by concern (state format 1), from the default seed:
# rescue.iso attached to web-1 (job aaa...a), virtio-win-0.1.240.iso deleted (bbb...b), old-1 expunged (ccc...c).
STATE_FORMAT_1 = Path(__file__).parent / "data" / "state-format-1.json"


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
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
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
    with run_simulator(strict_attach=True, process=True) as s:
        assert requests.get(f"{s.url}/_simulator/config", timeout=5).json()["strictAttach"] is True


def test_a_simulator_in_its_own_process_takes_the_same_options_and_leaves_nothing_behind() -> None:
    seed = json.loads(DEFAULT_SEED_PATH.read_text())
    seed["vmInstances"] = [vm for vm in seed["vmInstances"] if vm["name"] == "web-1"]
    with run_simulator(seed=seed, job_seconds=0.01, latency_ms=1, session_timeout_seconds=60, process=True) as s:
        config = requests.get(f"{s.url}/_simulator/config", timeout=5).json()
        assert config == {"jobSeconds": 0.01, "latencyMs": 1.0, "sessionTimeoutSeconds": 60, "strictAttach": False}
        assert [v["name"] for v in SimCtl(s.url).inventory()["vmInstances"]] == ["web-1"]
        assert s.log_file.read_text().startswith(f"ZStack simulator listening on {s.url}\n")
        pid, log = s.pid, s.log_file
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not log.parent.exists()  # the temporary seed and log are gone


def test_a_simulator_process_that_cannot_start_says_why(tmp_path: Path) -> None:
    bad = tmp_path / "seed.json"
    bad.write_text("[]")
    with pytest.raises(SimulatorStartError, match=r"exited \(code 1\) before it listened; .*JSON object"):
        run_simulator(seed=bad, process=True).start()


def background(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "zstack_iso.simulator", "--port", "0", "--job-seconds", "0.01", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_cli_background_starts_once_records_its_pid_and_stops_on_sigterm(tmp_path: Path) -> None:
    pid_file, log_file = tmp_path / "run" / "pid", tmp_path / "run" / "log"
    files = ("--pid-file", str(pid_file), "--log-file", str(log_file))
    started = background("--background", *files)
    assert started.returncode == 0, started.stderr
    url, pid = re.fullmatch(r"ZStack simulator listening on (\S+) \(pid (\d+), log .*\)\n", started.stdout).groups()
    try:
        assert pid_file.read_text() == f"{pid}\n"
        assert log_file.read_text().startswith(f"ZStack simulator listening on {url}\n")
        r = requests.put(f"{url}/zstack/v1/management-nodes/actions", json={"getVersion": {}}, timeout=5)
        assert r.status_code == 200
        again = background("--background", *files)
        assert again.returncode == 0
        assert again.stdout == f"ZStack simulator already running (pid {pid}, from {pid_file})\n"
        foreground = background("--pid-file", str(pid_file))
        assert foreground.returncode == 1 and "already running" in foreground.stderr
    finally:
        os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_file.exists()
    assert log_file.read_text().endswith("ZStack simulator stopped\n")


def test_cli_background_goes_with_a_log_file() -> None:
    run = background("--background")
    assert run.returncode == 2 and "--background and --log-file go together" in run.stderr


def test_cli_state_file_survives_kill_9_in_the_middle_of_writes(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    node = run_simulator(state_file=state, job_seconds=0.005, process=True).start()
    sim = SimCtl(node.url)
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
    node.kill()  # SIGKILL: no chance to finish a write
    node.stop()
    stop.set()
    worker.join(timeout=10)
    assert len(acked) > 5
    with run_simulator(state_file=state, job_seconds=0.005, process=True) as restarted:
        sim2 = SimCtl(restarted.url)
        attached = sim2.cdroms(sim2.vm("web-1"))[0].get("isoUuid") == sim2.image(RESCUE)
        # whatever was confirmed is on disk; at most the one unconfirmed operation after it also landed
        assert attached in ((acked[-1] == "attach"), (acked[-1] == "detach"))
        json.loads(state.read_text())


# ---- HTTPS


def test_https_mode_serves_the_api_and_job_locations_over_tls(tls_node, tls_ctl: SimCtl) -> None:
    s, sim = tls_node[0], tls_ctl
    assert s.url.startswith("https://127.0.0.1:")
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
