"""Status socket, merging of per-worker counters, and ``tunkit status`` (text and -j)."""

from __future__ import annotations

import json
import os
import stat
import threading

from tunkit.cli import main
from tunkit.overlay.loop import PacketLoop
from tunkit.overlay.status import StatusServer, merge, query

W0 = {
    "sender": 0, "mode": "authenticated", "device": "tk0",
    "tun": {"rx_packets": 3, "tx_packets": 1}, "udp": {"gso": True, "gro": True, "send_calls": 2},
    "drops": {"bad_mac": 1},
    "peers": [{"name": "b", "endpoint": "192.0.2.2:4800", "prefixes": ["198.18.0.2/32"],
               "rx_packets": 1, "rx_bytes": 10, "tx_packets": 3, "tx_bytes": 30, "drops": {"bad_mac": 1}}],
}
W1 = {
    "sender": 1, "mode": "authenticated", "device": "tk0",
    "tun": {"rx_packets": 2, "tx_packets": 4}, "udp": {"gso": False, "gro": True, "send_calls": 5},
    "drops": {"replay": 2, "bad_mac": 1},
    "peers": [{"name": "b", "endpoint": "192.0.2.2:4800", "prefixes": ["198.18.0.2/32"],
               "rx_packets": 4, "rx_bytes": 40, "tx_packets": 2, "tx_bytes": 20, "drops": {"replay": 2}}],
}


def test_merge_sums_counters_per_peer_and_reason():
    m = merge([W0, W1])
    assert m["workers"] == 2 and m["mode"] == "authenticated"
    assert m["drops"] == {"bad_mac": 2, "replay": 2}
    assert m["tun"] == {"rx_packets": 5, "tx_packets": 5}
    assert m["udp"] == {"gso": False, "gro": True, "send_calls": 7}
    (p,) = m["peers"]
    assert (p["rx_packets"], p["rx_bytes"], p["tx_packets"], p["tx_bytes"]) == (5, 50, 5, 50)
    assert p["drops"] == {"bad_mac": 1, "replay": 2}
    assert merge([]) == {"workers": 0, "peers": [], "drops": {}}


def _serve(path, doc):
    loop = PacketLoop()
    srv = StatusServer(path, lambda: doc)
    loop.add_reader(srv, srv.on_readable)
    th = threading.Thread(target=loop.run, kwargs={"timeout": 10})
    th.start()
    return loop, srv, th


def test_server_answers_json_with_private_socket_and_cli_prints_it(tmp_path, capsys):
    path = str(tmp_path / "run" / "tk0.sock")
    doc = merge([W0, W1])
    loop, srv, th = _serve(path, doc)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert query(path) == doc
        assert main(["status", "--socket", path, "-j"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out[0]["peers"] == doc["peers"] and out[0]["socket"] == path
        assert main(["status", "--socket", path]) == 0
        text = capsys.readouterr().out
        assert "peer b at 192.0.2.2:4800" in text and "rx 5 packets 50 bytes" in text
        assert "drops: bad_mac 2, replay 2" in text
    finally:
        loop.stop()
        th.join()
        loop.close()
        srv.close()
    assert not os.path.exists(path)


def test_cli_reports_missing_instance(tmp_path, capsys):
    assert main(["status", "--socket", str(tmp_path / "none.sock")]) == 1
    assert "no such socket" in capsys.readouterr().err


def test_stale_socket_file_is_replaced(tmp_path):
    path = str(tmp_path / "tk0.sock")
    open(path, "w").close()
    srv = StatusServer(path, dict)
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        srv.close()


def test_status_server_warns_about_a_directory_others_may_write(tmp_path, caplog):
    from tunkit.overlay.status import StatusServer

    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    srv = StatusServer(str(d / "x.sock"), dict)
    srv.close()
    assert "others may write to the status socket's directory (mode 0777)" in caplog.text
    caplog.clear()
    os.chmod(d, 0o1777)  # sticky, like /tmp: others cannot replace our socket
    StatusServer(str(d / "y.sock"), dict).close()
    assert "others may write" not in caplog.text
