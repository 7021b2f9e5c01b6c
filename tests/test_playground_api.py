"""``ember playground``: every endpoint, bad input (the server answers 4xx and keeps serving), and
the numbers: training through the server equals training the same net directly with ember."""
import http.client
import json
import socket
import subprocess
import sys
import threading

import numpy as np
import pytest

import ember
from ember import nn, optim
from ember.cli import main as cli_main
from ember.nn import functional as F
from ember.playground import data as D
from ember.playground import engine as E
from ember.playground.server import MAX_JSON_BYTES, ApiError, Sessions, make_server


@pytest.fixture(scope="module")
def server():
    srv = make_server("127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def token(srv):
    """This test client's tab token (GET /api/token, once per server), as the page fetches it."""
    if not hasattr(srv, "_test_token"):
        conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
        conn.request("GET", "/api/token")
        srv._test_token = json.loads(conn.getresponse().read())["token"]
        conn.close()
    return srv._test_token


def send(srv, method, path, body=None, headers=None, timeout=30):
    """One request with exactly ``headers`` (plus Host and Content-Length): (status, JSON or bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=timeout)
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    if r.getheader("Content-Type", "").startswith("application/json"):
        return r.status, json.loads(data)
    return r.status, data


def request(srv, method, path, body=None, ctype="application/json", headers=None):
    """One request as the page sends it (JSON, with the tab token); ``headers`` add or override."""
    return send(srv, method, path, body, {"Content-Type": ctype, "X-Ember-Token": token(srv), **(headers or {})})


def send_oversized(srv, path, size):
    """POST ``size`` bytes; the server may answer 413 and close before the body is sent."""
    conn = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=30)
    conn.putrequest("POST", path)
    conn.putheader("Content-Type", "application/json")
    conn.putheader("X-Ember-Token", token(srv))
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    chunk = b"1,2,0\n" * 10_000
    try:
        for _ in range(size // len(chunk) + 1):
            conn.send(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed without reading the body: that is the point
    r = conn.getresponse()
    body = json.loads(r.read())
    conn.close()
    return r.status, body


def new_session(srv, **cfg):
    status, s = request(srv, "POST", "/api/session", {"config": cfg})
    assert status == 200, s
    return s


def alive(srv):
    status, opts = request(srv, "GET", "/api/options")
    assert status == 200 and "circle" in opts["datasets"]


# ---- static page ---------------------------------------------------------------------------------
def test_page_and_assets_are_served_without_external_urls(server):
    status, html = request(server, "GET", "/")
    assert status == 200 and b"<canvas id=\"heatmap\"" in html
    for name in ("app.js", "style.css", "favicon.svg"):
        status, body = request(server, "GET", f"/static/{name}")
        assert status == 200 and len(body) > 50
        assert b"http://" not in body.replace(b"http://www.w3.org", b"") and b"https://" not in body, name
    assert b"http://" not in html and b"https://" not in html


def test_unknown_paths_and_traversal_are_404(server):
    for path in ("/static/../server.py", "/static/%2e%2e/engine.py", "/etc/passwd", "/api/nothing"):
        status, body = request(server, "GET", path)
        assert status == 404, path
    status, body = request(server, "POST", "/", {"x": 1})
    assert status == 405


def test_options_lists_choices_and_optimizer_availability(server):
    status, o = request(server, "GET", "/api/options")
    assert status == 200
    assert set(o["datasets"]) == {"circle", "xor", "gauss", "spiral", "spirals", "reg-plane", "reg-gauss", "custom"}
    assert [f["name"] for f in o["features"]] == ["x1", "x2", "x1sq", "x2sq", "x1x2", "sinx1", "sinx2"]
    assert set(o["activations"]) == {"relu", "tanh", "sigmoid", "linear", "leaky_relu"}
    assert o["optimizers"]["sgd"] is True and o["optimizers"]["momentum"] is True
    for name, cls in (("adam", "Adam"), ("rmsprop", "RMSprop"), ("adagrad", "Adagrad")):
        assert o["optimizers"][name] == hasattr(optim, cls)
    assert o["limits"] == {"layers": 6, "neurons": 8}


# ---- sessions ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dataset", ["circle", "xor", "gauss", "spiral", "spirals", "reg-plane", "reg-gauss"])
def test_every_dataset_builds_trains_and_draws(server, dataset):
    s = new_session(server, dataset=dataset, arms=4, layers=[3], activations=["leaky_relu"], noise=20, ratio=30)
    n_train, n_test = len(s["train_points"]), len(s["test_points"])
    assert n_train + n_test == 500 and n_train == 150
    assert s["task"] == ("regression" if dataset.startswith("reg") else "classification")
    assert s["classes"] == {"spirals": 4, "reg-plane": 0, "reg-gauss": 0}.get(dataset, 2)
    status, st = request(server, "POST", "/api/step", {"session": s["session"], "unit": "batch", "count": 3})
    assert status == 200 and st["done"] == 3 and st["steps"] == 3
    assert len(st["neurons"]) == 3 and len(st["neurons"][1]) == 3  # inputs, hidden, output
    assert len(st["weights"]) == 2 and np.shape(st["weights"][0]) == (3, 2)
    assert st["heatmap"]["size"] == E.GRID and all(g > 0 for g in st["grad_norms"])


def test_epoch_step_counts_minibatches(server):
    s = new_session(server, dataset="xor", batch=7, ratio=50)
    status, st = request(server, "POST", "/api/step", {"session": s["session"], "unit": "epoch", "count": 2})
    assert st["epoch"] == 2 and st["steps"] == 2 * (-(-250 // 7)) == st["done"]
    assert len(st["history"]) == 2 and st["history"][-1][0] == 2


@pytest.mark.parametrize("cfg, message", [
    ({"dataset": "moons"}, "unknown dataset 'moons'; choose one of circle"),
    ({"layers": [8] * 10000}, "at most 6 hidden layers allowed, got 10000"),
    ({"layers": [9], "activations": ["relu"]}, "layer 1: width must be an integer in [1, 8], got 9"),
    ({"layers": [2, "x"], "activations": ["relu", "relu"]}, "layer 2: width must be an integer"),
    ({"layers": [2], "activations": ["swish"]}, "layer 1: unknown activation 'swish'"),
    ({"layers": [2, 2], "activations": ["relu"]}, "activations must list one activation per hidden layer (2)"),
    ({"lr": -1}, "lr must be a number in [1e-06, 10], got -1"),
    ({"lr": "fast"}, "lr must be a number"),
    ({"noise": 80}, "noise must be a number in [0, 50], got 80"),
    ({"ratio": 5}, "ratio must be a number in [10, 90]"),
    ({"batch": 0}, "batch must be an integer in [1, 1000], got 0"),
    ({"batch": 2.5}, "batch must be an integer"),
    ({"seed": -3}, "seed must be an integer"),
    ({"features": []}, "features must be a non-empty list"),
    ({"features": ["x3"]}, "features must be a non-empty list of distinct names"),
    ({"loss": "hinge"}, "unknown loss 'hinge'; choose one of mse, cross_entropy"),
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ({"reg": "l3"}, "unknown reg 'l3'"),
    ({"dropout": 0.95}, "dropout must be a number in [0, 0.9]"),
    ({"dataset": "reg-plane", "loss": "cross_entropy"}, "loss cross_entropy needs a classification dataset"),
    ({"dataset": "custom"}, "dataset custom needs points"),
    ({"dataset": "custom", "points": [[0, 0, 1]] * 3}, "a custom data set needs at least 4 points, got 3"),
    ({"dataset": "custom", "points": [[0, 0, 1], [1, 1, 1], [2, 2, 1], [3, 3, 1]]}, "at least two classes"),
    ({"dataset": "custom", "points": [[0, 0, 0], [1, 1, 1], [2, 2, 0], [9, 3, 1]]}, "coordinates must lie in [-6, 6]"),
    ({"dataset": "custom", "points": [[0, 0, 0], [1, "a", 1], [2, 2, 0], [3, 3, 1]]}, "point 1: expected [x1, x2, label]"),
    ({"dataset": "custom", "points": [[0, 0, 0], [1, 1, 9], [2, 2, 0], [3, 3, 1]]}, "labels must be integers 0..7"),
    ({"bogus": 1}, "unknown parameter(s): bogus"),
])
def test_bad_config_is_400_with_message(server, cfg, message):
    status, body = request(server, "POST", "/api/session", {"config": cfg})
    assert status == 400, body
    assert message in body["error"]
    alive(server)


def test_lift_flag_raises_limits_but_not_beyond_the_hard_cap(server):
    s = new_session(server, lift=True, layers=[9] * 7, activations="relu")
    assert np.shape(s["weights"][1]) == (9, 9) and len(s["weights"]) == 8
    status, body = request(server, "POST", "/api/session", {"config": {"lift": True, "layers": [8] * 10000}})
    assert status == 400 and "at most 16 hidden layers allowed, got 10000" in body["error"]


def test_unavailable_optimizer_is_refused(server, monkeypatch):
    monkeypatch.setitem(E.OPTIMIZERS, "adam", "NoSuchAdam")
    status, body = request(server, "POST", "/api/session", {"config": {"optimizer": "adam"}})
    assert status == 400 and "ember.optim has no NoSuchAdam" in body["error"]
    assert request(server, "GET", "/api/options")[1]["optimizers"]["adam"] is False


def test_malformed_bodies(server):
    for body, msg in ((b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"),
                      (b"\xff\xfe", "not valid JSON")):
        status, r = request(server, "POST", "/api/session", body)
        assert status == 400 and msg in r["error"]
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.putrequest("POST", "/api/step")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("X-Ember-Token", token(server))
    conn.endheaders()  # no Content-Length
    r = conn.getresponse()
    assert r.status == 411 and "Content-Length" in json.loads(r.read())["error"]
    conn.close()
    status, r = send_oversized(server, "/api/step", MAX_JSON_BYTES + 1)
    assert status == 413 and "request body too large" in r["error"]
    alive(server)


def test_step_validation_and_unknown_session(server):
    s = new_session(server)
    for body, status_, msg in (({"session": "nope"}, 404, "unknown session 'nope'"),
                               ({"session": s["session"], "unit": "year"}, 400, "unit must be 'epoch' or 'batch'"),
                               ({"session": s["session"], "count": 0}, 400, "count must be an integer in [1, 100]"),
                               ({"session": s["session"], "count": 10**9}, 400, "count must be an integer"),
                               ({"session": s["session"], "count": True}, 400, "count must be an integer")):
        status, r = request(server, "POST", "/api/step", body)
        assert status == status_ and msg in r["error"], r
    status, r = request(server, "GET", "/api/export/weights?session=zzz")
    assert status == 404
    alive(server)


def test_reset_reuses_the_session_id(server):
    s = new_session(server)
    status, r = request(server, "POST", "/api/session", {"config": {"dataset": "xor"}, "session": s["session"]})
    assert status == 200 and r["session"] == s["session"] and r["config"]["dataset"] == "xor"


def test_session_table_is_capped_and_busy_sessions_are_kept():
    table = Sessions(cap=2)
    a, b = E.Session({}), E.Session({})
    ida, idb = table.put(a), table.put(b)
    a.lock.acquire()
    idc = table.put(E.Session({}))  # evicts b: a is busy
    assert table.get(ida) is a and len(table) == 2
    with pytest.raises(ApiError, match="unknown session"):
        table.get(idb)
    table.get(idc).lock.acquire()
    with pytest.raises(ApiError, match="all 2 sessions are busy") as e:
        table.put(E.Session({}))
    assert e.value.status == 503


def test_two_tabs_train_at_the_same_time(server):
    ids = [new_session(server, dataset="gauss")["session"] for _ in range(2)]
    results = {}

    def run(sid):
        results[sid] = request(server, "POST", "/api/step", {"session": sid, "unit": "epoch", "count": 2})
    threads = [threading.Thread(target=run, args=(i,)) for i in ids]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(results[i][0] == 200 and results[i][1]["epoch"] == 2 for i in ids)
    # same config, same seed: the two tabs computed the same numbers despite running together
    assert results[ids[0]][1]["history"] == results[ids[1]][1]["history"]


# ---- upload --------------------------------------------------------------------------------------
def test_csv_upload_then_train_on_it(server):
    csv = "x1,x2,label\n" + "\n".join(f"{x:.2f},{y:.2f},{int(x * y > 0)}"
                                       for x, y in np.random.default_rng(0).uniform(-5, 5, (40, 2)))
    status, r = request(server, "POST", "/api/upload", {"csv": csv})
    assert status == 200 and r["count"] == 40 and r["task"] == "classification"
    s = new_session(server, dataset="custom", points=r["points"], layers=[4], activations=["tanh"])
    assert len(s["train_points"]) == 20 and s["classes"] == 2
    status, r = request(server, "POST", "/api/upload", {"csv": "1,2,0.5\n-1,0,-0.25\n0,0,0.1\n3,3,0.7\n"})
    assert status == 200 and r["task"] == "regression"


@pytest.mark.parametrize("csv, message", [
    ("x1,x2,label\n1,2,0\n3,4\n", "line 3: expected 3 columns x1,x2,label, got 2"),
    ("1,2,0\n1,abc,1\n", "line 2: not a number in '1,abc,1'"),
    ("1,2,0\n1,nan,1\n", "line 2: values must be finite"),
    ("# nothing\n\n", "the CSV holds no data lines"),
    ("1,2,0\n3,4,0\n5,5,0\n-1,-1,0\n", "at least two classes"),
    ("1,2,0\n30,4,1\n5,5,0\n-1,-1,1\n", "coordinates must lie in [-6, 6]"),
    ("0,0,1\n" * 10_001, "too many points: more than 10000"),
])
def test_malformed_csv_is_400(server, csv, message):
    status, r = request(server, "POST", "/api/upload", {"csv": csv})
    assert status == 400 and message in r["error"], r
    alive(server)


def test_non_utf8_csv_is_400(server):
    status, r = request(server, "POST", "/api/upload", b'{"csv": "1,2,\xff\\n"}')
    assert status == 400 and "not valid JSON" in r["error"]


def test_50_megabyte_upload_is_refused_unread_and_the_server_keeps_serving(server):
    status, r = send_oversized(server, "/api/upload", 50 * 1024 * 1024)
    assert status == 413
    assert "request body too large: 52428800 bytes (limit 2097152 bytes)" in r["error"]
    alive(server)


# ---- inspector -----------------------------------------------------------------------------------
def test_inspector_before_any_step_is_409(server):
    s = new_session(server)
    status, r = request(server, "POST", "/api/inspect", {"session": s["session"]})
    assert status == 409 and "no training step yet" in r["error"]


def test_inspector_deltas_match_hand_backprop(server):
    s = new_session(server, dataset="spirals", arms=3, layers=[5, 4], activations=["tanh", "sigmoid"],
                    loss="cross_entropy", batch=16, reg="l2", reg_rate=0.01)
    request(server, "POST", "/api/step", {"session": s["session"], "unit": "batch", "count": 2})
    status, I = request(server, "POST", "/api/inspect", {"session": s["session"]})
    assert status == 200 and I["batch"] == 16 and I["samples"] == 16
    assert I["recursion_max_err"] < 1e-6 and I["grad_max_rel_err"] < 1e-5
    # independent float64 forward/backward from the pre-update weights (deck 000 recursion)
    W = [np.array(w) for w in I["weights"]]
    a0 = np.array(I["a"][0], np.float64)
    y = np.array(I["labels"])
    z1 = np.array(I["z"][0])
    a1 = np.tanh(z1)
    z2 = np.array(I["z"][1])
    a2 = 1 / (1 + np.exp(-z2))
    z3 = np.array(I["z"][2])
    np.testing.assert_allclose(np.array(I["a"][1]), a1, atol=1e-5)
    np.testing.assert_allclose(np.array(I["a"][2]), a2, atol=1e-5)
    np.testing.assert_allclose(z2, a1 @ W[1].T + (z2 - a1 @ W[1].T).mean(0), atol=1e-4)  # affine in a1
    p = np.exp(z3 - z3.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    d3 = (p - np.eye(3)[y]) / len(y)                     # δ(L+1) = (softmax − onehot)/N  (mean loss)
    d2 = a2 * (1 - a2) * (d3 @ W[2])                      # δ(l) = a(1 − a) Σ δ Θ  (sigmoid, deck 000)
    d1 = (1 - a1 ** 2) * (d2 @ W[1])                      # tanh: g' = 1 − a²
    for got, want in zip(I["delta"], (d1, d2, d3)):
        np.testing.assert_allclose(np.array(got), want, atol=1e-6)
    g0 = d1.T @ a0 + 0.01 * W[0]                          # ∂L/∂Θ = Σ δ a + λΘ (the update's gradient)
    np.testing.assert_allclose(np.array(I["grads"][0]), g0, atol=1e-5)


# ---- export --------------------------------------------------------------------------------------
def test_export_weights_and_script_reproduce_the_session(server, tmp_path):
    s = new_session(server, dataset="reg-gauss", layers=[6, 3], activations=["relu", "tanh"], loss="mse",
                    optimizer="momentum", lr=0.01, reg="l1", reg_rate=0.001, dropout=0.2, batch=20)
    sid = s["session"]
    status, st = request(server, "POST", "/api/step", {"session": sid, "unit": "epoch", "count": 2})
    status, st = request(server, "POST", "/api/step", {"session": sid, "unit": "batch", "count": 3})
    status, blob = request(server, "GET", f"/api/export/weights?session={sid}")
    assert status == 200
    (tmp_path / "w.safetensors").write_bytes(blob)
    from safetensors import safe_open
    with safe_open(str(tmp_path / "w.safetensors"), "np") as f:
        assert sorted(f.keys()) == ["0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"]
        meta = f.metadata()
        np.testing.assert_allclose(f.get_tensor("4.weight"), st["weights"][2], atol=6e-6)  # page: 5 decimals
    assert json.loads(meta["config"])["layers"] == [6, 3] and meta["steps"] == str(st["steps"])
    status, script = request(server, "GET", f"/api/export/script?session={sid}")
    assert status == 200
    (tmp_path / "net.py").write_bytes(script)
    out = subprocess.run([sys.executable, str(tmp_path / "net.py"), str(tmp_path / "w.safetensors")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-2] == f"final: train loss {st['loss']['train']!r}, test loss {st['loss']['test']!r}"
    assert lines[-1].startswith("weights identical to")


# ---- the numbers are ember's ---------------------------------------------------------------------
def direct_training(cfg, epochs):
    """Train the playground's network with ember's public API only, as a user would."""
    xy, y = D.make_dataset(cfg["dataset"], 500, cfg.get("noise", 0) / 100, cfg["seed"], cfg.get("arms", 3))
    tr, te = D.split(len(xy), cfg["ratio"] / 100, cfg["seed"])
    x = D.features(xy, cfg["features"])
    xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
    ember.manual_seed(cfg["seed"])
    model = nn.Sequential(nn.Linear(len(cfg["features"]), 6), nn.Tanh(), nn.Linear(6, 5), nn.ReLU(),
                          nn.Linear(5, 3))
    opt = optim.SGD(model.parameters(), lr=cfg["lr"])
    gen = ember.random.default_generator()
    losses = []
    for _ in range(epochs):
        perm = gen.permutation(len(xtr))
        for b in range(0, len(xtr), cfg["batch"]):
            idx = perm[b:b + cfg["batch"]]
            loss = F.cross_entropy(model(ember.tensor(xtr[idx])), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with ember.no_grad():
            losses.append((F.cross_entropy(model(ember.tensor(xtr)), ytr).item(),
                           F.cross_entropy(model(ember.tensor(xte)), yte).item()))
    return losses, model


def test_server_losses_equal_direct_ember_training(server):
    cfg = dict(dataset="spirals", arms=3, noise=10, ratio=60, batch=8, seed=7, lr=0.1, loss="cross_entropy",
               features=["x1", "x2", "sinx1", "sinx2"], layers=[6, 5], activations=["tanh", "relu"])
    s = new_session(server, **cfg)
    served = []
    for _ in range(3):
        status, st = request(server, "POST", "/api/step", {"session": s["session"], "unit": "epoch", "count": 1})
        served.append((st["loss"]["train"], st["loss"]["test"]))
    direct, model = direct_training(cfg, 3)
    assert served == direct  # bit-identical, not merely close
    assert st["weights"][2] == np.round(model[4].weight.numpy().astype(np.float64), 5).tolist()
    assert direct[-1][0] < direct[0][0]


# ---- the CLI -------------------------------------------------------------------------------------
def test_cli_reports_a_busy_port_and_a_bad_port(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert cli_main(["playground", "--port", str(port), "--no-browser"]) == 1
    assert "ember playground: error: cannot serve on 127.0.0.1:" in capsys.readouterr().err
    assert cli_main(["playground", "--port", "70000", "--no-browser"]) == 1
    assert "--port must be in 0..65535, got 70000" in capsys.readouterr().err


def test_cli_serves_on_loopback_until_interrupted():
    import re
    import signal
    import urllib.request
    proc = subprocess.Popen([sys.executable, "-m", "ember", "playground", "--port", "0", "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        m = re.match(r"ember playground on (http://127\.0\.0\.1:\d+/)", line)
        assert m, line
        html = urllib.request.urlopen(m.group(1), timeout=60).read()
        assert b"ember playground" in html
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        assert "ember playground: interrupted" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_request_slots_are_all_released(server):
    import time
    for _ in range(server.max_connections + 5):  # more requests than slots: a leak would 503 here
        alive(server)
    deadline = time.time() + 5
    while server.active != 0 and time.time() < deadline:
        time.sleep(0.01)
    assert server.active == 0
