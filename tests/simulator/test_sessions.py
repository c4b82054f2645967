"""Sessions (§1) and AccessKey authentication (§2) over real HTTP."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import socket
import time

import pytest
import requests

from devkit import SimCtl
from zstack_iso.simulator import run_simulator
from zstack_iso.simulator.seed import DEFAULT_SEED_PATH

SHA = hashlib.sha512(b"password").hexdigest()
DATE_RE = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} (AM|PM)$")


def login(sim: SimCtl, name: str = "admin", password: str = SHA) -> requests.Response:
    body = {"logInByAccount": {"accountName": name, "password": password}}
    return requests.put(f"{sim.api}/accounts/login", json=body, timeout=5)


def query(sim: SimCtl, session: str) -> requests.Response:
    return requests.get(f"{sim.api}/vm-instances", headers={"Authorization": f"OAuth {session}"}, timeout=5)


def test_login_returns_session_inventory(sim: SimCtl) -> None:
    r = login(sim)
    assert r.status_code == 200
    inv = r.json()["inventory"]
    assert set(inv) == {"uuid", "accountUuid", "userUuid", "expiredDate", "createDate"}  # userType null: omitted
    assert re.fullmatch(r"[0-9a-f]{32}", inv["uuid"])
    assert inv["accountUuid"] == inv["userUuid"]
    assert DATE_RE.match(inv["expiredDate"]) and DATE_RE.match(inv["createDate"])


def test_login_with_wrong_password_fails_id1000_with_503(sim: SimCtl) -> None:
    r = login(sim, password=hashlib.sha512(b"nope").hexdigest())
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "ID.1000"
    assert r.json()["error"]["details"] == "wrong account name or password"


def test_login_with_plaintext_password_fails(sim: SimCtl) -> None:
    assert login(sim, password="password").status_code == 503


def test_login_with_stale_logIn_body_key_fails(sim: SimCtl) -> None:
    r = requests.put(f"{sim.api}/accounts/login", json={"logIn": {"accountName": "admin", "password": SHA}}, timeout=5)
    assert r.status_code == 503 and r.json()["error"]["code"] == "SYS.1007"


def test_login_is_counted_in_the_journal(sim: SimCtl) -> None:
    sim.clear_journal()
    login(sim)
    login(sim, password="bad")
    assert sim.journal()["counters"]["logins"] == 1


def test_login_by_user() -> None:
    seed = json.loads(DEFAULT_SEED_PATH.read_text())
    seed["users"] = [{"name": "ops", "account": "admin", "password": "s3cret"}]
    with run_simulator(seed=seed, job_seconds=0.01) as s:
        url = f"{s.url}/zstack/v1/accounts/users/login"
        good = {
            "logInByUser": {
                "accountName": "admin",
                "userName": "ops",
                "password": hashlib.sha512(b"s3cret").hexdigest(),
            }
        }
        r = requests.put(url, json=good, timeout=5)
        assert r.status_code == 200
        inv = r.json()["inventory"]
        assert inv["userUuid"] != inv["accountUuid"]
        bad = {"logInByUser": {"accountName": "admin", "userName": "ops", "password": SHA}}
        r = requests.put(url, json=bad, timeout=5)
        assert r.status_code == 503 and r.json()["error"]["details"] == "wrong account or username or password"


def test_logout_answers_empty_body_and_invalidates_the_session(sim: SimCtl) -> None:
    session = login(sim).json()["inventory"]["uuid"]
    r = requests.delete(f"{sim.api}/accounts/sessions/{session}", timeout=5)
    assert r.status_code == 200 and r.json() == {}
    assert query(sim, session).json()["error"]["code"] == "ID.1001"


def test_logout_of_unknown_session_is_a_silent_no_op(sim: SimCtl) -> None:
    r = requests.delete(f"{sim.api}/accounts/sessions/{'9' * 32}", timeout=5)
    assert r.status_code == 200 and r.json() == {}


def test_validate_session(sim: SimCtl) -> None:
    session = login(sim).json()["inventory"]["uuid"]
    assert requests.get(f"{sim.api}/accounts/sessions/{session}/valid", timeout=5).json() == {"valid": True}
    sim.expire_sessions()
    assert requests.get(f"{sim.api}/accounts/sessions/{session}/valid", timeout=5).json() == {"valid": False}


def test_missing_authorization_header_is_plain_400(sim: SimCtl) -> None:
    r = requests.get(f"{sim.api}/vm-instances", timeout=5)
    assert r.status_code == 400 and r.text == "missing header 'Authorization'"


def test_unknown_authorization_type_is_plain_400(sim: SimCtl) -> None:
    r = requests.get(f"{sim.api}/vm-instances", headers={"Authorization": "Bearer x"}, timeout=5)
    assert r.status_code == 400 and r.text == "Authorization type must be 'OAuth'"


def test_missing_header_on_async_call_is_400_without_a_job(sim: SimCtl) -> None:
    sim.clear_journal()
    r = requests.post(f"{sim.api}/vm-instances/{sim.vm('web-1')}/iso/{sim.image('rescue.iso')}", timeout=5)
    assert r.status_code == 400
    assert sim.journal()["counters"]["jobs"] == 0


def test_unknown_session_on_query_is_503_id1001(sim: SimCtl) -> None:
    r = query(sim, "b" * 32)
    assert r.status_code == 503
    assert r.json()["error"] == {
        "code": "ID.1001",
        "description": "The session is invalid, either wrong session id or the session has been expired",
        "details": "Session expired",
        "cost": "0ms",
    }


def test_expired_sessions_fail_async_calls_after_202(sim: SimCtl) -> None:
    sim.headers()
    sim.expire_sessions()
    r = sim.submit("PUT", f"vm-instances/{sim.vm('web-1')}/actions", json={"stopVmInstance": {}})
    assert r.status_code == 202
    status, body = sim.wait(r.json()["location"])
    assert status == 503 and body["error"]["code"] == "ID.1001"
    assert sim.vm_inventory(sim.vm("web-1"))["state"] == "Running"


def test_sessions_slide_on_each_call_but_not_on_polls(sim: SimCtl) -> None:
    sim.config(sessionTimeoutSeconds=1)
    session = login(sim).json()["inventory"]["uuid"]
    for _ in range(4):  # 2 s of activity, each call inside the 1 s window
        time.sleep(0.5)
        assert query(sim, session).status_code == 200
    # polls are not authenticated and do not renew (§1.4)
    r = requests.post(
        f"{sim.api}/vm-instances/{sim.vm('web-1')}/iso/{sim.image('rescue.iso')}",
        headers={"Authorization": f"OAuth {session}"},
        timeout=5,
    )
    location = r.json()["location"]
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:
        requests.get(location, timeout=5)
        time.sleep(0.1)
    assert query(sim, session).json()["error"]["code"] == "ID.1001"


def test_session_limit_per_account_is_500(sim: SimCtl) -> None:
    with requests.Session() as http:
        body = {"logInByAccount": {"accountName": "admin", "password": SHA}}
        for _ in range(500):
            assert http.put(f"{sim.api}/accounts/login", json=body, timeout=5).status_code == 200
        r = http.put(f"{sim.api}/accounts/login", json=body, timeout=5)
    assert r.status_code == 503 and r.json()["error"]["code"] == "ID.1006"


# ---- §2 AccessKey


def signed_headers(key_id: str, secret: str, method: str, uri: str, date: str | None = None) -> dict[str, str]:
    date = date or dt.datetime.now().strftime("%a, %d %b %Y %H:%M:%S CST")
    sig = base64.b64encode(hmac.new(secret.encode(), f"{method}\n{date}\n{uri}".encode(), hashlib.sha1).digest())
    return {"Authorization": f"ZStack {key_id}:{sig.decode()}", "Date": date}


def test_access_key_signed_query_succeeds(sim: SimCtl) -> None:
    key_id, secret = sim.access_key
    headers = signed_headers(key_id, secret, "GET", "/v1/vm-instances")
    r = requests.get(f"{sim.api}/vm-instances", params={"q": "name=web-1"}, headers=headers, timeout=5)
    assert r.status_code == 200 and r.json()["inventories"][0]["name"] == "web-1"


def test_access_key_signed_attach_succeeds(sim: SimCtl) -> None:
    key_id, secret = sim.access_key
    vm, iso = sim.vm("web-1"), sim.image("rescue.iso")
    uri = f"/v1/vm-instances/{vm}/iso/{iso}"
    r = requests.post(
        f"{sim.api}/vm-instances/{vm}/iso/{iso}", headers=signed_headers(key_id, secret, "POST", uri), timeout=5
    )
    assert r.status_code == 202
    assert sim.wait(r.json()["location"])[0] == 200


def test_access_key_with_wrong_secret_fails_id1000(sim: SimCtl) -> None:
    key_id, _ = sim.access_key
    r = requests.get(
        f"{sim.api}/vm-instances", headers=signed_headers(key_id, "wrong", "GET", "/v1/vm-instances"), timeout=5
    )
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "ID.1000" and "wrong accessKey signature" in r.json()["error"]["details"]


def test_unknown_access_key_id_fails_id1000(sim: SimCtl) -> None:
    r = requests.get(
        f"{sim.api}/vm-instances", headers=signed_headers("nokey", "x", "GET", "/v1/vm-instances"), timeout=5
    )
    assert r.status_code == 503 and "access key id" in r.json()["error"]["details"]


@pytest.mark.parametrize(
    ("headers", "status", "text"),
    [
        ({"Authorization": "ZStack onlyid"}, 400, "accessKey format is 'ZStack AccessKeyId:Signature'"),
        ({"Authorization": "ZStack a:b:c"}, 400, "accessKey format is 'ZStack AccessKeyId:Signature'"),
        ({"Authorization": "ZStack a:b"}, 400, "'Date' must be incuded in request header"),
        ({"Authorization": "ZStack a:b", "Date": "2024-10-15 10:00:00"}, 400,
         "'Date' format error, correct format is 'EEE, dd MMM yyyy HH:mm:ss z'"),
        ({"Authorization": "ZStack a:b", "Date": "Tue, 15 Oct 2024 10:00:00 GMT"}, 403, "requestTimeTooSkewed"),
    ],
)  # fmt: skip
def test_access_key_header_errors_are_plain_text(sim: SimCtl, headers: dict, status: int, text: str) -> None:
    r = requests.get(f"{sim.api}/vm-instances", headers=headers, timeout=5)
    assert (r.status_code, r.text) == (status, text)


# ---- sessions in query strings never reach the journal or the request log (point 7)


def _calls_with_session_in_query(url: str, session: str) -> None:
    """What the Python SDK sends (zssdk.py L216-248 @ 5a29293): sessionId= on GET/DELETE, and sessionUuid= too
    for LogOut and ValidateSession; the node takes the session only from the Authorization header."""
    auth = {"Authorization": f"OAuth {session}"}
    api = f"{url}/zstack/v1"
    requests.get(f"{api}/vm-instances", params={"q": "name=web-1", "sessionId": session}, headers=auth, timeout=5)
    requests.get(f"{api}/images?SessionId={session}&limit=1", headers=auth, timeout=5)
    requests.get(f"{api}/images?%73essionId={session}", headers=auth, timeout=5)
    requests.get(f"{api}/accounts/sessions/{session}/valid", params={"sessionUuid": session}, timeout=5)
    requests.delete(f"{api}/accounts/sessions/{session}", params={"sessionUuid": session, "x": "1"}, timeout=5)


def test_sessions_in_query_strings_are_masked_in_the_journal(sim: SimCtl) -> None:
    session = login(sim).json()["inventory"]["uuid"]
    sim.clear_journal()
    _calls_with_session_in_query(sim.url, session)
    paths = [e["path"] for e in sim.journal()["requests"]]
    assert len(paths) == 5 and not [p for p in paths if session in p]
    assert paths[0] == "/zstack/v1/vm-instances?q=name%3Dweb-1&sessionId=***"
    assert paths[4] == "/zstack/v1/accounts/sessions/***?sessionUuid=***&x=1"


def test_sessions_in_query_strings_are_masked_in_the_request_log(capsys: pytest.CaptureFixture[str]) -> None:
    with run_simulator(job_seconds=0.01, log_requests=True) as s:
        session = login(SimCtl(s.url)).json()["inventory"]["uuid"]
        _calls_with_session_in_query(s.url, session)
        # a request line http.server refuses is logged by its own log_error, quoting the raw line
        host, port = s.url.split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            conn.sendall(f"GET /zstack/v1/images?sessionId={session} HTTP/1.1 junk\r\n\r\n".encode())
            conn.recv(65536)
    err = capsys.readouterr().err
    assert "sessionId=***" in err and "Bad request" in err
    assert session not in err


def test_renew_session_duration_out_of_range_is_sys1007_before_the_session_check(sim: SimCtl) -> None:
    # APIRenewSessionMsg.java:26-27 numberRange {60, 31536000}; ApiMessageParamValidator.java:92-107 @ 5a29293
    session = login(sim).json()["inventory"]["uuid"]
    r = requests.put(
        f"{sim.api}/accounts/sessions/{session}/renew",
        json={"renewSession": {"duration": 10}},
        headers={"Authorization": "OAuth " + "0" * 32},
        timeout=5,
    )
    status, body = sim.wait(r.json()["location"])
    assert status == 503 and body["error"]["code"] == "SYS.1007"
    assert body["error"]["details"] == "field[duration] must be in range of [60, 31536000]"
