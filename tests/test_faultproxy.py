"""The fault proxy itself: it forwards to the real Synapse, and each fault
does what the fault tests rely on."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator

import pytest

from tests.harness.faultproxy import Fault, FaultProxy
from tests.harness.fixtures import synapse  # noqa: F401
from tests.harness.synapse import Synapse


@pytest.fixture
def proxy(synapse: Synapse) -> Iterator[FaultProxy]:  # noqa: F811
    with FaultProxy("127.0.0.1", synapse.port) as p:
        yield p


def get(proxy: FaultProxy, path: str = "/_matrix/client/versions") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_forwards_to_synapse(proxy: FaultProxy) -> None:
    status, body = get(proxy)
    assert status == 200 and "versions" in json.loads(body)
    assert [(s.method, s.path, s.outcome) for s in proxy.requests()] == [
        ("GET", "/_matrix/client/versions", "forwarded")
    ]


def test_answers_with_an_error_a_bounded_number_of_times(proxy: FaultProxy) -> None:
    proxy.add(
        Fault(
            "versions",
            "status",
            status=429,
            body={"errcode": "M_LIMIT_EXCEEDED", "retry_after_ms": 1500},
            times=2,
        )
    )
    answers = [get(proxy) for _ in range(3)]
    assert [status for status, _ in answers] == [429, 429, 200]
    assert json.loads(answers[0][1])["retry_after_ms"] == 1500


def test_drops_and_cuts_short(proxy: FaultProxy) -> None:
    proxy.add(Fault("versions", "drop", times=1))
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(proxy)
    proxy.add(Fault("versions", "truncate", keep=60, times=1))
    with pytest.raises(http.client.HTTPException):
        get(proxy)
    assert get(proxy)[0] == 200


def test_down_refuses_then_recovers(proxy: FaultProxy) -> None:
    proxy.set_down(True)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(proxy)
    proxy.set_down(False)
    assert get(proxy)[0] == 200


def test_stall_delays_but_forwards(proxy: FaultProxy) -> None:
    proxy.add(Fault("versions", "stall", seconds=0.3, times=1))
    assert get(proxy)[0] == 200
    assert proxy.requests()[0].outcome == "stall"
