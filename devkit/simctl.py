"""SimCtl: a small client of a running simulator for tests and benchmarks, over plain `requests` (never
zstack_iso.client: the tests check the client against the simulator, so neither may lean on the other).

Lookups (vm, image, cdroms, vm_inventory, access_key) read the control API's inventory dump, so they add
nothing to the journal; `zstack()` makes real ZStack calls as admin (journaled, one cached login), and so do the
operations for out-of-band changes (delete_image, expunge_image, recover_image, change_image_state,
change_iso_order, start_vm, stop_vm, destroy_vm, recover_vm, expunge_vm, delete_cdrom).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import requests

ADMIN = ("admin", "password")


class SimCtl:
    def __init__(self, url: str, *, verify: bool | str = True, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.api = self.url + "/zstack/v1"
        self._http = requests.Session()
        self._verify = verify  # passed per request: REQUESTS_CA_BUNDLE would override Session.verify
        self._timeout = timeout
        self._session_uuid: str | None = None

    def close(self) -> None:
        self._http.close()

    def _req(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._http.request(method, url, verify=self._verify, **kwargs)

    # ------------------------------------------------------------------ control API

    def _control(self, method: str, path: str, json: Any = None) -> Any:
        r = self._req(method, f"{self.url}/_simulator/{path}", json=json)
        if r.status_code != 200:
            raise AssertionError(f"control API {method} {path} answered {r.status_code}: {r.text}")
        return r.json()

    def reset(self) -> None:
        self._control("POST", "reset")
        self._session_uuid = None

    def inventory(self) -> dict[str, Any]:
        return self._control("GET", "inventory")

    def vm(self, name: str) -> str:
        """UUID of the VM with this name."""
        for vm in self.inventory()["vmInstances"]:
            if vm["name"] == name:
                return vm["uuid"]
        raise KeyError(f"no VM named {name!r} in the simulator")

    def image(self, name: str) -> str:
        """UUID of the image with this name."""
        for image in self.inventory()["images"]:
            if image["name"] == name:
                return image["uuid"]
        raise KeyError(f"no image named {name!r} in the simulator")

    def cdroms(self, vm_uuid: str) -> list[dict[str, Any]]:
        """The VM's CD-ROMs as raw wire dicts, sorted by deviceId."""
        rows = [c for c in self.inventory()["vmCdRoms"] if c["vmInstanceUuid"] == vm_uuid]
        return sorted(rows, key=lambda c: c["deviceId"])

    def vm_inventory(self, vm_uuid: str) -> dict[str, Any] | None:
        """The VM's wire inventory (with vmCdRoms), or None if it does not exist (expunged)."""
        return next((vm for vm in self.inventory()["vmInstances"] if vm["uuid"] == vm_uuid), None)

    @property
    def access_key(self) -> tuple[str, str]:
        key = self.inventory()["accessKeys"][0]
        return key["id"], key["secret"]

    def journal(self) -> dict[str, Any]:
        return self._control("GET", "journal")

    def clear_journal(self) -> None:
        self._control("DELETE", "journal")

    def counters(self) -> dict[str, int]:
        """The journal's counters since it was last cleared: requests, logins, jobs (async jobs accepted)."""
        return self.journal()["counters"]

    def config(self, **changes: Any) -> dict[str, Any]:
        """PUT the given config keys (jobSeconds, latencyMs, sessionTimeoutSeconds); returns the whole config."""
        return self._control("PUT", "config", changes)

    def fault(self, **spec: Any) -> str:
        """Add a fault (method, pathRegex, action, times, status, body, error, delayMs); returns its id."""
        return self._control("POST", "faults", spec)["id"]

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def expire_sessions(self) -> None:
        self._control("POST", "sessions/expire")

    def hold_state(self, vm: str, state: str, seconds: float) -> None:
        """Hold a VM (uuid or name) in `state` for `seconds`, then restore its former state."""
        try:
            vm_uuid = self.vm(vm)
        except KeyError:
            vm_uuid = vm
        self._control("PUT", f"vm-instances/{vm_uuid}/state", {"state": state, "seconds": seconds})

    # ------------------------------------------------------------------ ZStack operations as admin
    # Out-of-band changes for tests, on the real node's REST paths (journaled like any ZStack call). Each takes
    # names or UUIDs, waits for the job and returns (status, body); with check=True (the default) anything but a
    # 200 raises AssertionError.

    def _ref(self, kind: str, name_or_uuid: str) -> str:
        try:
            return self.vm(name_or_uuid) if kind == "vm" else self.image(name_or_uuid)
        except KeyError:
            return name_or_uuid  # a UUID (or a name that is gone: the node answers for it)

    def _op(self, method: str, path: str, check: bool, **kwargs: Any) -> tuple[int, Any]:
        status, body = self.zstack(method, path, **kwargs)
        if check and status != 200:
            raise AssertionError(f"{method} {path} answered {status}: {body}")
        return status, body

    def delete_image(
        self,
        image: str,
        *,
        backup_storage_uuids: list[str] | None = None,
        delete_mode: str | None = None,
        check: bool = True,
    ) -> tuple[int, Any]:
        """DeleteImage: detaches the image from every VM; with the default policy it stays, status Deleted."""
        params: list[tuple[str, str]] = [("backupStorageUuids", u) for u in backup_storage_uuids or []]
        if delete_mode is not None:
            params.append(("deleteMode", delete_mode))
        return self._op("DELETE", f"images/{self._ref('image', image)}", check, params=params or None)

    def expunge_image(
        self, image: str, *, backup_storage_uuids: list[str] | None = None, check: bool = True
    ) -> tuple[int, Any]:
        """ExpungeImage of a deleted image: it is gone from queries."""
        body: dict[str, Any] = {"backupStorageUuids": backup_storage_uuids} if backup_storage_uuids else {}
        return self._op("PUT", f"images/{self._ref('image', image)}/actions", check, json={"expungeImage": body})

    def recover_image(
        self, image: str, *, backup_storage_uuids: list[str] | None = None, check: bool = True
    ) -> tuple[int, Any]:
        """RecoverImage of a deleted image: Ready again, attached nowhere."""
        body: dict[str, Any] = {"backupStorageUuids": backup_storage_uuids} if backup_storage_uuids else {}
        return self._op("PUT", f"images/{self._ref('image', image)}/actions", check, json={"recoverImage": body})

    def change_image_state(self, image: str, state_event: str, *, check: bool = True) -> tuple[int, Any]:
        """ChangeImageState with stateEvent "enable" or "disable"; attachments are not touched."""
        body = {"changeImageState": {"stateEvent": state_event}}
        return self._op("PUT", f"images/{self._ref('image', image)}/actions", check, json=body)

    def change_iso_order(self, vm: str, iso: str, device_id: int = 0, *, check: bool = True) -> tuple[int, Any]:
        """UpdateVmInstance with the `iso::<iso>::<deviceId>` system tag: the ISO moves to the VM's lowest-deviceId
        CD-ROM, whose ISO moves to the ISO's former CD-ROM (the node ignores device_id). Fails as the node does
        (SYS.1000) when an empty CD-ROM comes before the ISO's."""
        body = {"updateVmInstance": {}, "systemTags": [f"iso::{self._ref('image', iso)}::{device_id}"]}
        return self._op("PUT", f"vm-instances/{self._ref('vm', vm)}/actions", check, json=body)

    def start_vm(self, vm: str, *, check: bool = True) -> tuple[int, Any]:
        return self._op("PUT", f"vm-instances/{self._ref('vm', vm)}/actions", check, json={"startVmInstance": {}})

    def stop_vm(self, vm: str, *, check: bool = True) -> tuple[int, Any]:
        return self._op("PUT", f"vm-instances/{self._ref('vm', vm)}/actions", check, json={"stopVmInstance": {}})

    def destroy_vm(self, vm: str, *, check: bool = True) -> tuple[int, Any]:
        """DestroyVmInstance: Destroyed, its CD-ROMs and their ISOs kept."""
        return self._op("DELETE", f"vm-instances/{self._ref('vm', vm)}", check)

    def recover_vm(self, vm: str, *, check: bool = True) -> tuple[int, Any]:
        """RecoverVmInstance of a Destroyed VM: Stopped, with its CD-ROMs and ISOs."""
        return self._op("PUT", f"vm-instances/{self._ref('vm', vm)}/actions", check, json={"recoverVmInstance": {}})

    def expunge_vm(self, vm: str, *, check: bool = True) -> tuple[int, Any]:
        """ExpungeVmInstance of a Destroyed VM: the VM and its CD-ROMs are gone, the images untouched."""
        return self._op("PUT", f"vm-instances/{self._ref('vm', vm)}/actions", check, json={"expungeVmInstance": {}})

    def delete_cdrom(self, cdrom_uuid: str, *, check: bool = True) -> tuple[int, Any]:
        """DeleteVmCdRom (the VM must be Stopped), also of a CD-ROM that holds an ISO."""
        return self._op("DELETE", f"vm-instances/cdroms/{cdrom_uuid}", check)

    # ------------------------------------------------------------------ raw ZStack calls as admin

    def login(self) -> str:
        body = {"logInByAccount": {"accountName": ADMIN[0], "password": hashlib.sha512(ADMIN[1].encode()).hexdigest()}}
        r = self._req("PUT", f"{self.api}/accounts/login", json=body)
        if r.status_code != 200:
            raise AssertionError(f"admin login failed: {r.status_code} {r.text}")
        self._session_uuid = r.json()["inventory"]["uuid"]
        return self._session_uuid

    def headers(self) -> dict[str, str]:
        """An admin `Authorization: OAuth <session>` header (logs in once)."""
        if self._session_uuid is None:
            self.login()
        return {"Authorization": f"OAuth {self._session_uuid}"}

    def submit(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One raw request to the ZStack API as admin, without waiting for a job (kwargs go to requests)."""
        headers = {**self.headers(), **kwargs.pop("headers", {})}
        url = path if path.startswith("http") else f"{self.api}/{path.lstrip('/')}"
        return self._req(method, url, headers=headers, **kwargs)

    def wait(self, location: str, timeout: float = 30.0) -> tuple[int, Any]:
        """Poll a job location until it is no longer 202; returns (status, parsed body)."""
        deadline = time.monotonic() + timeout
        while True:
            p = self._req("GET", location)
            if p.status_code != 202 or time.monotonic() > deadline:
                return p.status_code, _parse(p)
            time.sleep(0.005)

    def zstack(
        self,
        method: str,
        path: str,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        wait: bool = True,
    ) -> tuple[int, Any]:
        """Call the ZStack API as admin; async calls are polled to the end. Returns (status, parsed body)."""
        for attempt in range(2):
            status, body = self._call_once(method, path, json, params, headers, wait)
            expired = status == 503 and isinstance(body, dict) and body.get("error", {}).get("code") == "ID.1001"
            if not expired or attempt:
                return status, body
            self._session_uuid = None  # the session expired (or the simulator was reset): log in again once
        raise AssertionError("unreachable")

    def _call_once(
        self, method: str, path: str, json: Any, params: Any, headers: dict[str, str] | None, wait: bool
    ) -> tuple[int, Any]:
        if self._session_uuid is None:
            self.login()
        if path.startswith("http"):
            url = path
        elif path.startswith("/zstack/"):
            url = self.url + path
        else:
            url = f"{self.api}/{path.lstrip('/')}"
        all_headers = {"Authorization": f"OAuth {self._session_uuid}", **(headers or {})}
        r = self._req(method, url, json=json, params=params, headers=all_headers)
        status, body = r.status_code, _parse(r)
        if not wait or status != 202 or not isinstance(body, dict) or "location" not in body:
            return status, body
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            p = self._req("GET", body["location"])
            if p.status_code != 202:
                return p.status_code, _parse(p)
            time.sleep(0.005)
        raise AssertionError(f"job {body['location']} did not finish within 60 s")


def _parse(r: requests.Response) -> Any:
    try:
        return r.json()
    except ValueError:
        return r.text
