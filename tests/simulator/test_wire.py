"""Bad input and generic HTTP answers (§3.7): plain-text errors, no tracebacks, no corrupted inventory."""

from __future__ import annotations

import socket

import pytest
import requests

from devkit import SimCtl


def snapshot(sim: SimCtl) -> dict:
    return sim.inventory()


def raw(sim: SimCtl, method: str, path: str, data: bytes | str | None = None, **headers: str) -> requests.Response:
    return requests.request(method, f"{sim.api}/{path}", data=data, headers={**sim.headers(), **headers}, timeout=5)


def test_malformed_json_is_plain_500_without_traceback_and_changes_nothing(sim: SimCtl) -> None:
    before = snapshot(sim)
    r = raw(sim, "POST", f"vm-instances/{sim.vm('web-1')}/iso/{sim.image('rescue.iso')}", data=b'{"systemTags": [')
    assert r.status_code == 500
    assert r.text and "Traceback" not in r.text and not r.text.startswith("{")
    assert snapshot(sim) == before


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"42", b"\xff\xfe\x00"])
def test_json_that_is_not_an_object_is_plain_500(sim: SimCtl, body: bytes) -> None:
    r = raw(sim, "PUT", f"vm-instances/{sim.vm('web-1')}/actions", data=body)
    assert r.status_code == 500 and "Traceback" not in r.text


def test_action_params_that_are_not_an_object_are_plain_400(sim: SimCtl) -> None:
    r = raw(sim, "PUT", f"vm-instances/{sim.vm('web-1')}/actions", data=b'{"stopVmInstance": "now"}')
    assert r.status_code == 400 and "stopVmInstance" in r.text


def test_string_field_with_wrong_type_is_plain_400(sim: SimCtl) -> None:
    r = raw(sim, "PUT", f"vm-instances/{sim.vm('web-1')}/actions", data=b'{"stopVmInstance": {"type": 5}}')
    assert r.status_code == 400 and "type" in r.text
    assert sim.vm_inventory(sim.vm("web-1"))["state"] == "Running"


def test_system_tags_that_are_not_a_list_of_strings_are_plain_400(sim: SimCtl) -> None:
    path = f"vm-instances/{sim.vm('web-1')}/iso/{sim.image('rescue.iso')}"
    for body in (b'{"systemTags": "cdromUuid::x"}', b'{"systemTags": [1]}'):
        r = raw(sim, "POST", path, data=body)
        assert r.status_code == 400 and "systemTags" in r.text


@pytest.mark.parametrize(("params", "word"), [({"limit": "ten"}, "limit"), ({"start": "1.5"}, "start")])
def test_query_parameters_with_wrong_types_are_plain_400(sim: SimCtl, params: dict, word: str) -> None:
    # RestServer.java:1104-1115 @ 5a29293: Integer.valueOf, and the node's own text
    r = requests.get(f"{sim.api}/vm-instances", params=params, headers=sim.headers(), timeout=5)
    assert (r.status_code, r.text) == (400, f"Invalid query parameter. '{word}' must be an integer")


def test_query_count_that_is_not_true_is_false_not_an_error(sim: SimCtl) -> None:
    # RestServer.java:1116-1117 @ 5a29293: Boolean.parseBoolean; "maybe" is false, never a 400
    r = requests.get(f"{sim.api}/vm-instances", params={"count": "maybe"}, headers=sim.headers(), timeout=5)
    assert r.status_code == 200 and len(r.json()["inventories"]) == 5 and "total" not in r.json()


def test_unknown_api_path_is_plain_404(sim: SimCtl) -> None:
    r = raw(sim, "GET", "zones-of-mars")
    assert (r.status_code, r.text) == (404, "no api mapping to /v1/zones-of-mars")


def test_path_outside_the_context_is_404(sim: SimCtl) -> None:
    r = requests.get(f"{sim.url}/index.html", timeout=5)
    assert r.status_code == 404 and "no api mapping" in r.text


def test_trailing_slash_does_not_match(sim: SimCtl) -> None:
    assert raw(sim, "GET", "vm-instances/").status_code == 404


def test_post_on_shared_path_without_creational_api_is_500(sim: SimCtl) -> None:
    r = raw(sim, "POST", f"vm-instances/{sim.vm('web-1')}")
    assert r.status_code == 500 and r.text == "No creational API found for the path[/v1/vm-instances/{uuid}]".replace(
        "{uuid}", sim.vm("web-1")
    )


def test_put_on_shared_path_without_action_key_is_400(sim: SimCtl) -> None:
    vm = sim.vm("web-1")
    r = raw(sim, "PUT", f"vm-instances/{vm}/actions", data=b'{"danceVmInstance": {}}')
    assert (r.status_code, r.text) == (
        400,
        f"the body doesn't contain action mapping to the URL[/v1/vm-instances/{vm}/actions]",
    )


def test_other_methods_on_shared_path_are_405(sim: SimCtl) -> None:
    assert raw(sim, "PATCH", f"vm-instances/{sim.vm('web-1')}").status_code == 405


def test_unique_path_ignores_the_http_method(sim: SimCtl) -> None:
    # §3.7 handleUniqueApi: the one API of the path runs whatever the method
    r = requests.get(f"{sim.api}/accounts/sessions/{'1' * 32}/valid", timeout=5)
    p = requests.post(f"{sim.api}/accounts/sessions/{'1' * 32}/valid", timeout=5)
    assert r.json() == p.json() == {"valid": False}


def test_empty_body_on_post_is_accepted(sim: SimCtl) -> None:
    r = raw(sim, "POST", f"vm-instances/{sim.vm('web-1')}/iso/{sim.image('rescue.iso')}", data=b"")
    assert r.status_code == 202


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "vm-instances/cdroms", b'{"params": {"name": ["x"], "vmInstanceUuid": 3}}'),
        ("PUT", "vm-instances/x/actions", b'{"startVmInstance": {"extra": {"deep": [1, {"a": null}]}}}'),
        ("DELETE", "vm-instances/%00%ff/iso?isoUuid=%00", None),
        ("GET", "vm-instances?q=%ff%fe&sort=-%00", None),
        ("GET", "vm-instances?limit=99999999999999999999999", None),
        ("PUT", "accounts/login", b'{"logInByAccount": {"accountName": {"$ne": 1}, "password": []}}'),
        ("GET", "images?q=size>abc", None),
        ("GET", "vm-instances?q=createDate>yesterday", None),
    ],
)
def test_garbage_never_crashes_or_corrupts_the_inventory(sim: SimCtl, method: str, path: str, body) -> None:
    before = snapshot(sim)
    r = raw(sim, method, path, data=body)
    assert r.status_code in (200, 202, 400, 404, 500, 503)
    assert "Traceback" not in r.text
    if r.status_code == 202:
        sim.wait(r.json()["location"])
    assert snapshot(sim) == before
    assert raw(sim, "GET", "vm-instances").status_code == 200  # still serving


def test_http11_keep_alive_serves_several_requests_on_one_connection(sim: SimCtl) -> None:
    host, port = sim.url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        body = '{"getVersion":{}}'
        request = (
            f"PUT /zstack/v1/management-nodes/actions HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        s.sendall((request + body).encode() * 2)  # two pipelined requests on one connection
        data = b""
        while data.count(b"HTTP/1.1 200") < 2:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
    assert data.count(b'"version"') == 2
