"""The playground server against a hostile web and a hostile network (issue 14, items 4, 8 and 9).

Item 4: only loopback Host values, same-origin API calls, JSON-only POST bodies and per-tab tokens,
so a foreign page can neither use nor evict the user's session. Item 8: slow clients, parallel
clients and a full server are answered promptly. Item 9: diverged networks, absurd JSON numbers,
deep nesting and short bodies get normal answers or 4xx, never a 500 or a hang. Every client here
talks to 127.0.0.1 only, and every loop stops by itself.
"""
import http.client
import json
import socket
import threading
import time

import pytest

from ember.playground.server import HEADER_TIMEOUT, MAX_SESSIONS, make_server
from test_playground_api import send as raw  # one request with exactly the headers given


def start(**limits):
    srv = make_server("127.0.0.1", 0, **limits)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


@pytest.fixture(scope="module")
def server():
    srv = start()
    yield srv
    srv.shutdown()
    srv.server_close()


def get_token(srv):
    status, t = raw(srv, "GET", "/api/token")
    assert status == 200
    return t["token"]


def api(srv, path, body=None, token=None, method="POST"):
    """A request as the page sends it: JSON body, the tab's token."""
    h = {"X-Ember-Token": token or get_token(srv), "Content-Type": "application/json"}
    return raw(srv, method, path, body, h)


def session(srv, token, **cfg):
    status, s = api(srv, "/api/session", {"config": cfg}, token)
    assert status == 200, s
    return s["session"]


# ---- item 4: DNS rebinding, cross-site requests, tokens ------------------------------------------
def test_item4_only_loopback_host_values_with_the_port_are_served(server):
    port = server.server_address[1]
    for host in ("evil.com", f"evil.com:{port}", "localhost", "127.0.0.1", f"127.0.0.1:{port + 1}",
                 f"192.168.1.10:{port}", ""):
        for path in ("/", "/api/token", "/api/options", "/static/app.js"):
            status, body = raw(server, "GET", path, headers={"Host": host})
            assert status == 403, (host, path, status)
        assert "is not allowed" in body["error"]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
        status, html = raw(server, "GET", "/", headers={"Host": host})
        assert status == 200 and b"ember playground" in html


def test_item4_a_cross_site_text_plain_post_creates_nothing(server):
    before = len(server.sessions)
    # what <form enctype="text/plain" method="post"> on any web page can send, even with a stolen id
    body = b'{"config": {}, "x": "="}'
    for headers in ({"Content-Type": "text/plain", "Origin": "http://evil.com"},
                    {"Content-Type": "text/plain"},
                    {"Content-Type": "application/x-www-form-urlencoded"},
                    {"Content-Type": "text/plain", "X-Ember-Token": get_token(server)}):
        status, r = raw(server, "POST", "/api/session", body, headers)
        assert status in (403, 415), (headers, status, r)
    status, r = raw(server, "POST", "/api/session", body, {"Content-Type": "text/plain",
                                                            "X-Ember-Token": get_token(server)})
    assert status == 415 and "application/json" in r["error"]
    assert len(server.sessions) == before


def test_item4_foreign_origin_and_cross_site_fetches_are_refused(server):
    tok, port = get_token(server), server.server_address[1]
    ok = {"X-Ember-Token": tok, "Content-Type": "application/json"}
    for extra in ({"Origin": "http://evil.com"}, {"Origin": "null"}, {"Origin": f"http://127.0.0.1:{port + 1}"},
                  {"Origin": f"https://127.0.0.1:{port}"}, {"Sec-Fetch-Site": "cross-site"},
                  {"Sec-Fetch-Site": "same-site"}):
        status, r = raw(server, "POST", "/api/session", {"config": {}}, {**ok, **extra})
        assert status == 403, (extra, r)
        status, r = raw(server, "GET", "/api/token", headers=extra)
        assert status == 403, extra  # a foreign page cannot even ask for a token
    status, r = raw(server, "POST", "/api/session", {"config": {}},
                    {**ok, "Origin": f"http://localhost:{port}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200


def test_item4_every_api_call_needs_a_token_issued_by_this_server(server):
    sid = session(server, get_token(server))
    forged = "0" * 32 + "." + "0" * 32
    for tok in (None, "", "abc", forged, get_token(server) + "0"):
        h = {"Content-Type": "application/json"} | ({} if tok is None else {"X-Ember-Token": tok})
        for method, path, body in (("GET", "/api/options", b""), ("POST", "/api/session", {"config": {}}),
                                   ("POST", "/api/step", {"session": sid}), ("POST", "/api/inspect", {"session": sid}),
                                   ("POST", "/api/upload", {"csv": "1,1,0"}),
                                   ("GET", f"/api/export/weights?session={sid}", b"")):
            status, r = raw(server, method, path, body, h)
            assert status == 403 and "X-Ember-Token" in r["error"], (tok, path, status)


def test_item4_a_token_of_another_server_is_refused(server):
    other = start()
    try:
        status, r = api(server, "/api/options", token=get_token(other), method="GET")
        assert status == 403
    finally:
        other.shutdown()
        other.server_close()


def test_item4_a_session_answers_only_to_its_own_tab(server):
    mine, theirs = get_token(server), get_token(server)
    sid = session(server, mine)
    for path, body in (("/api/step", {"session": sid}), ("/api/inspect", {"session": sid})):
        status, r = api(server, path, body, theirs)
        assert status == 404 and "unknown session" in r["error"]
    status, r = api(server, f"/api/export/script?session={sid}", token=theirs, method="GET")
    assert status == 404
    # another tab naming my id in a reset gets a new session; mine is untouched
    status, r = api(server, "/api/session", {"config": {"dataset": "xor"}, "session": sid}, theirs)
    assert status == 200 and r["session"] != sid
    status, r = api(server, "/api/step", {"session": sid, "unit": "batch"}, mine)
    assert status == 200 and r["config"]["dataset"] == "circle"


def test_item4_sixteen_foreign_requests_cannot_evict_the_users_session():
    srv = start()
    try:
        tok = get_token(srv)
        sid = session(srv, tok)
        for i in range(3 * MAX_SESSIONS):  # every way a foreign page could try to make sessions
            headers = [{"Content-Type": "text/plain", "Origin": "http://evil.com"},
                       {"Content-Type": "text/plain"},
                       {"Content-Type": "application/json", "Origin": "http://evil.com"}][i % 3]
            status, _ = raw(srv, "POST", "/api/session", {"config": {}}, headers)
            assert status in (403, 415)
        assert len(srv.sessions) == 1
        status, r = api(srv, "/api/step", {"session": sid, "unit": "batch"}, tok)
        assert status == 200 and r["steps"] == 1
    finally:
        srv.shutdown()
        srv.server_close()


# ---- item 8: denial of service ------------------------------------------------------------------
def test_item8_listen_backlog_and_50_parallel_requests_all_answered():
    srv = start()
    try:
        assert srv.request_queue_size == 128
        tok = get_token(srv)
        results, gate = [], threading.Barrier(50, timeout=30)

        def one():
            try:
                gate.wait()
                results.append(api(srv, "/api/options", token=tok, method="GET")[0])
            except Exception as e:  # a reset connection is a failure to count, not a crash
                results.append(repr(e))
        threads = [threading.Thread(target=one) for _ in range(50)]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
        assert results.count(200) == 50, results
    finally:
        srv.shutdown()
        srv.server_close()


def _slow_clients(port, n, stop):
    """n connections each sending one byte of a request line every 2 s until ``stop`` is set or
    the server closes them; returns the sockets and a list that collects when each was closed."""
    socks, closed = [], []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"G")
        socks.append(s)

    def drip():
        t0, k = time.monotonic(), 0
        while not stop.is_set() and time.monotonic() - t0 < 20:
            stop.wait(2.0)
            k += 1
            for s in socks:
                if s in [c for c, _ in closed]:
                    continue
                try:
                    s.sendall(b"ET /api/options HTTP/1.1\r\nX: "[k % 20:k % 20 + 1])
                    s.settimeout(0.01)
                    if s.recv(100) == b"":
                        closed.append((s, time.monotonic()))
                except socket.timeout:
                    pass
                except OSError:
                    closed.append((s, time.monotonic()))
    t = threading.Thread(target=drip, daemon=True)
    t.start()
    return socks, closed, t


def test_item8_45_slow_clients_do_not_delay_a_normal_request():
    srv = start()
    stop = threading.Event()
    socks = []
    try:
        tok = get_token(srv)
        t_start = time.monotonic()
        socks, closed, dripper = _slow_clients(srv.server_address[1], 45, stop)
        time.sleep(2.5)  # every slow client has its connection and is mid-request line
        assert srv.active >= 45
        t0 = time.monotonic()
        status, _ = api(srv, "/api/options", token=tok, method="GET")
        elapsed = time.monotonic() - t0
        assert status == 200 and elapsed < 2.0, f"a normal request took {elapsed:.1f} s behind 45 slow clients"
        # and the slow clients are cut off once the header deadline passes, bytes trickling or not
        deadline = time.monotonic() + HEADER_TIMEOUT + 10
        while len(closed) < 45 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(closed) == 45
        assert max(t for _, t in closed) - t_start < HEADER_TIMEOUT + 6
    finally:
        stop.set()
        for s in socks:
            s.close()
        srv.shutdown()
        srv.server_close()


def test_item8_a_full_server_answers_503_at_once_and_recovers():
    srv = start(max_connections=3, header_timeout=30)
    idle = [socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) for _ in range(3)]
    try:
        for s in idle:
            s.sendall(b"GET / HT")  # an unfinished request holds its connection
        deadline = time.monotonic() + 10
        while srv.active < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) as s:
            t0 = time.monotonic()
            reply = b""
            while not reply.endswith(b"}") and time.monotonic() - t0 < 5:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.0 503") and b"too many connections" in reply, reply
        assert time.monotonic() - t0 < 2
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + 10
    while srv.active and time.monotonic() < deadline:
        time.sleep(0.05)
    assert raw(srv, "GET", "/api/token")[0] == 200
    srv.shutdown()
    srv.server_close()


def test_item8_header_deadline_is_total_not_per_read():
    srv = start(header_timeout=1.5)
    try:
        with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) as s:
            t0, sent = time.monotonic(), 0
            line = b"GET /api/options HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 100
            try:
                while time.monotonic() - t0 < 8 and sent < len(line):
                    s.sendall(line[sent:sent + 1])  # one byte every 0.3 s: each read is quick
                    sent += 1
                    s.settimeout(0.3)
                    try:
                        if s.recv(100) == b"":
                            break
                    except socket.timeout:
                        pass
            except OSError:
                pass
            assert time.monotonic() - t0 < 4, "the server waited for a trickling client past its deadline"
    finally:
        srv.shutdown()
        srv.server_close()


# ---- item 9: never a 500 ----------------------------------------------------------------------
@pytest.mark.parametrize("body, message", [
    (b'{"n": 1e999}', "number out of range"),
    (b'{"config": {"n": 1e999}}', "number out of range"),
    (b'{"config": {"n": -1e400}}', "number out of range"),
    (b'{"config": {"n": ' + b"7" * 5000 + b'}}', "integer of 5000 digits"),
    (b'{"config": {"seed": -' + b"1" * 4400 + b'}}', "integer of 4400 digits"),
    (b'{"config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    (b'{"config": {"lr": NaN}}', "NaN"),
    (b'{"config": {"lr": Infinity}}', "Infinity"),
    (b'{"config": {"n": 1e300}}', "n must be an integer in [20, 2000]"),
])
def test_item9_absurd_json_is_400_not_500(server, body, message):
    parse_level = not message.startswith("n must")  # refused before any endpoint looks at it
    for path in ("/api/session", "/api/step", "/api/upload")[:3 if parse_level else 1]:
        status, r = api(server, path, body)
        assert status == 400 and message in r["error"], (path, status, r)
    assert api(server, "/api/options", method="GET")[0] == 200


def test_item9_a_body_shorter_than_its_content_length_is_a_prompt_400():
    srv = start(body_timeout=1.0)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=20)
        conn.putrequest("POST", "/api/step")
        for k, v in (("Content-Type", "application/json"), ("X-Ember-Token", get_token(srv)),
                     ("Content-Length", "1000")):
            conn.putheader(k, v)
        conn.endheaders()
        t0 = time.monotonic()
        conn.send(b'{"session": "')
        r = conn.getresponse()
        body = json.loads(r.read())
        assert r.status == 400 and "Content-Length says 1000 bytes, 13 arrived within 1 s" in body["error"]
        assert time.monotonic() - t0 < 5
        conn.close()
    finally:
        srv.shutdown()
        srv.server_close()


def test_item9_a_diverged_session_reports_it_and_can_be_reset(server):
    tok = get_token(server)
    sid = session(server, tok, lr=10, layers=[8, 8], activations="relu")
    status, r = api(server, "/api/step", {"session": sid, "unit": "epoch", "count": 20}, tok)
    assert status == 200, r  # JSON without NaN: it parsed
    assert r["diverged"].startswith("training diverged:") and "press reset" in r["diverged"]
    assert r["loss"] == {"train": None, "test": None}
    steps = r["steps"]
    status, r = api(server, "/api/step", {"session": sid, "unit": "epoch", "count": 5}, tok)
    assert status == 200 and r["done"] == 0 and r["steps"] == steps and r["diverged"]
    for path in ("/api/inspect", f"/api/export/weights?session={sid}"):
        status, _ = api(server, path, {"session": sid}, tok, method="POST" if "inspect" in path else "GET")
        assert status == 200, path
    status, r = api(server, "/api/session", {"session": sid, "config": {"lr": 0.03}}, tok)
    assert status == 200 and r["session"] == sid and r["diverged"] is None
    status, r = api(server, "/api/step", {"session": sid, "unit": "epoch"}, tok)
    assert status == 200 and r["epoch"] == 1 and r["loss"]["train"] < 1


@pytest.mark.parametrize("labels, task, says", [
    (range(9), "regression", "labels are integers 0..8: classification allows classes 0..7 only"),
    (range(3), "classification", "labels are integers 0..2, so they were read as class indices"),
    ([0.5, -0.25, 1], "regression", "not all integers"),
])
def test_item9_a_csv_upload_says_which_task_its_labels_were_taken_as(server, labels, task, says):
    labels = list(labels)
    csv = "\n".join(f"{i % 5 - 2},{i % 3 - 1},{labels[i % len(labels)]}" for i in range(40))
    status, r = api(server, "/api/upload", {"csv": csv})
    assert status == 200 and r["task"] == task and says in r["task_reason"], r
    other = "classification" if task == "regression" else "regression"
    status, r = api(server, "/api/upload", {"csv": csv, "task": other})
    if other == "classification" and labels == list(range(9)):
        assert status == 400 and "labels must be integers 0..7" in r["error"]
    elif other == "classification":
        assert status == 400
    else:
        assert status == 200 and r["task"] == "regression" and "as asked" in r["task_reason"]


def test_item9_upload_needs_csv_text(server):
    for body, msg in (({}, "upload needs"), ({"csv": 3}, "upload needs"), ({"csv": "1,1,0", "task": "x"}, "task must be")):
        status, r = api(server, "/api/upload", body)
        assert status == 400 and msg in r["error"]


@pytest.mark.parametrize("body", [
    {"config": {}, "session": [None]},                      # an unhashable session id
    {"config": {}, "session": {"a": 1}},
    {"config": {"features": [[1, 2, 3]]}},                 # lists where names belong
    {"config": {"layers": [2], "activations": [["relu"]]}},
    {"config": {"loss": ["mse"]}},
    {"config": {"dataset": {"custom": 1}}},
    {"config": {"dataset": "custom", "points": [[0, 0, 0], [1, 1, 1], [2, 2, 0], [3, 3, [1]]]}},
    {"config": None},
    {"config": {"n": 10 ** 29}},
])
def test_item9_wrong_json_types_are_400(server, body):
    status, r = api(server, "/api/session", body)
    if body["config"] == {}:
        assert status == 200  # a bad id only means "a new session"
    else:
        assert status == 400 and r["error"], r


@pytest.mark.parametrize("body, message", [
    ({"layer": 5, "row": 0, "col": 0, "value": 1}, "layer must be an integer in [0, 2]"),
    ({"layer": 0, "row": 4, "col": 0, "value": 1}, "row must be an integer in [0, 3]"),
    ({"layer": 0, "row": 0, "col": [0], "value": 1}, "col must be an integer in [0, 1]"),
    ({"layer": 0, "row": 0, "col": 0, "value": 1e3}, "value must be a number in [-100, 100]"),
    ({"layer": 0, "row": 0, "col": 0, "value": "2"}, "value must be a number"),
    ({"layer": True, "row": 0, "col": 0, "value": 1}, "layer must be an integer"),
])
def test_set_weight_validates_and_applies(server, body, message):
    tok = get_token(server)
    sid = session(server, tok)
    status, r = api(server, "/api/weight", {"session": sid, **body}, tok)
    assert status == 400 and message in r["error"], r
    status, r = api(server, "/api/weight", {"session": sid, "layer": 2, "row": 1, "col": 0, "value": -3.25}, tok)
    assert status == 200 and r["weights"][2][1][0] == -3.25 and r["edited"] == 1
    assert len(r["history"]) == 2 and r["history"][-1][1] == r["loss"]["train"]  # losses re-evaluated
    status, script = api(server, f"/api/export/script?session={sid}", token=tok, method="GET")
    assert b"1 weight(s) were set by hand" in script


def test_item15_4_output_units_are_named_by_the_loss(server):
    for cfg, label in (({"loss": "mse"}, "2 outputs (MSE vs one-hot)"), ({"loss": "cross_entropy"}, "2 logits"),
                       ({"dataset": "reg-plane"}, "1 value"), ({"dataset": "spirals", "arms": 5, "loss": "cross_entropy"},
                                                              "5 logits")):
        status, r = api(server, "/api/session", {"config": cfg})
        assert status == 200 and r["outputs"] == label


def test_item15_4_inspector_epoch_is_the_headers_epoch(server):
    tok = get_token(server)
    sid = session(server, tok, batch=7)
    for unit, count in (("epoch", 3), ("batch", 2), ("epoch", 1)):
        status, st = api(server, "/api/step", {"session": sid, "unit": unit, "count": count}, tok)
        status, view = api(server, "/api/inspect", {"session": sid}, tok)
        assert view["epoch"] == st["epoch"], (unit, count, view["epoch"], st["epoch"])
