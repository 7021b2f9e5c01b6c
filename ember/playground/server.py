"""The playground's HTTP server: the standard library's ``ThreadingHTTPServer`` serving one static
page and a small JSON API. Safe to leave running: loopback by default, bounded request sizes,
every parameter validated (a bad value is a 400 with a message, never a dead server), a capped
number of sessions, one training request at a time per session, and a step/time budget per request.

Endpoints (JSON in, JSON out unless noted):
    GET  /                       the page (ember/playground/static/index.html); /static/<file> its assets
    GET  /api/options            data sets, features, activations, losses, optimizers (and which exist), limits
    POST /api/session            {"config": {...}, "session"?: id} -> build (or rebuild) a network; full state
    POST /api/step               {"session", "unit": "epoch"|"batch", "count": 1..100} -> state after training
    POST /api/inspect            {"session"} -> the backprop inspector of the latest update
    POST /api/upload             CSV text body (x1,x2,label; ≤ 1 MB, ≤ 10,000 points) -> parsed points
    GET  /api/export/weights?session=ID   the trained weights (safetensors, with the config in its metadata)
    GET  /api/export/script?session=ID    a Python script that rebuilds and retrains the network with ember
"""
from __future__ import annotations

import json
import os
import secrets
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from . import data as D
from . import engine as E
from .export import script_text, weights_bytes

STATIC = os.path.join(os.path.dirname(__file__), "static")
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
MAX_JSON_BYTES = 2 << 20        # a custom data set of 10,000 points fits with room to spare
MAX_SESSIONS = 16
MAX_COUNT = 100                 # epochs or minibatches asked for in one request
MAX_STEPS = 5000                # minibatch updates done in one request
MAX_SECONDS = 2.0               # training time spent in one request
LOCK_WAIT = 5.0                 # how long a request waits for its session's worker
MAX_THREADS = 32                # requests handled at once


class ApiError(Exception):
    """An error the client caused: HTTP status and a message the page shows."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Sessions:
    """At most ``cap`` sessions by random id; the least recently used idle one makes room."""

    def __init__(self, cap: int = MAX_SESSIONS):
        self.cap, self._lock, self._s = cap, threading.Lock(), {}

    def get(self, sid) -> E.Session:
        """The session with id ``sid`` (marked as just used). Raises ApiError 404 if unknown."""
        if not isinstance(sid, str) or sid not in self._s:
            raise ApiError(404, f"unknown session {str(sid)[:40]!r}: press reset to start a new one")
        s = self._s[sid]
        s.last_used = time.monotonic()
        return s

    def put(self, session: E.Session, sid: str | None = None) -> str:
        """Store ``session`` under ``sid`` (replacing it) or under a new random id; returns the id.
        Raises ApiError 503 when the table is full and every session is busy training."""
        with self._lock:
            if sid not in self._s:
                sid = secrets.token_hex(8)
                while len(self._s) >= self.cap:
                    idle = [k for k, v in self._s.items() if not v.lock.locked()]
                    if not idle:
                        raise ApiError(503, f"all {self.cap} sessions are busy; try again shortly")
                    del self._s[min(idle, key=lambda k: self._s[k].last_used)]
            self._s[sid] = session
            return sid

    def __len__(self):
        return len(self._s)


class Handler(BaseHTTPRequestHandler):
    """Routes one request; every failure becomes a JSON {"error": message} with a 4xx/5xx status."""

    server_version = "ember-playground"
    timeout = 30  # seconds a slow client may take per socket read

    def log_message(self, fmt, *args):  # quiet unless asked
        if self.server.verbose:
            super().log_message(fmt, *args)

    # ---- plumbing --------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200):
        self._send(status, json.dumps(obj, allow_nan=False, separators=(",", ":")).encode(),
                   "application/json")

    def _body(self, limit: int) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(411, "a Content-Length header is required")
        try:
            n = int(length)
        except ValueError:
            raise ApiError(400, f"bad Content-Length {length[:20]!r}") from None
        if n < 0:
            raise ApiError(400, "bad Content-Length")
        if n > limit:
            self.close_connection = True  # don't read the oversized body
            raise ApiError(413, f"request body too large: {n} bytes (limit {limit} bytes)")
        return self.rfile.read(n)

    def _payload(self) -> dict:
        raw = self._body(MAX_JSON_BYTES)
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ApiError(400, f"request body is not valid JSON ({e})") from None
        if not isinstance(obj, dict):
            raise ApiError(400, "request body must be a JSON object")
        return obj

    def _dispatch(self, routes: dict):
        path = urlsplit(self.path).path
        try:
            fn = routes.get(path)
            if fn is None:
                if path.startswith("/api/"):
                    raise ApiError(404, f"no endpoint {path[:80]}")
                return self._static(path)
            fn()
        except ApiError as e:
            self._json({"error": str(e)}, e.status)
        except (E.ConfigError, D.DataError) as e:
            self._json({"error": str(e)}, 400)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug must not take the server down: report it and go on
            self.log_error("internal error on %s: %r", path, e)
            self._json({"error": f"internal error: {type(e).__name__}: {e}"[:300]}, 500)

    def do_GET(self):
        self._dispatch({"/api/options": self.options, "/api/export/weights": self.export_weights,
                        "/api/export/script": self.export_script})

    do_HEAD = do_GET

    def do_POST(self):
        self._dispatch({"/api/session": self.new_session, "/api/step": self.step,
                        "/api/inspect": self.inspect, "/api/upload": self.upload})

    def _static(self, path):
        if self.command not in ("GET", "HEAD"):
            raise ApiError(405, f"{self.command} is not allowed on {path[:80]}")
        name = "index.html" if path == "/" else path[len("/static/"):] if path.startswith("/static/") else None
        if name not in STATIC_FILES:  # a fixed list: no path ever reaches the file system
            raise ApiError(404, f"not found: {path[:80]}")
        with open(os.path.join(STATIC, name), "rb") as f:
            self._send(200, f.read(), STATIC_FILES[name])

    def _session(self, sid=None):
        if sid is None:
            sid = parse_qs(urlsplit(self.path).query).get("session", [None])[0]
        return self.server.sessions.get(sid)

    def _acquire(self, s: E.Session):
        if not s.lock.acquire(timeout=LOCK_WAIT):
            raise ApiError(409, "this session is busy with another request; try again")

    # ---- endpoints ---------------------------------------------------------------------------
    def options(self):
        """GET /api/options: the choices the page offers, which optimizers exist, the limits."""
        self._json({"datasets": list(D.DATASETS), "regression": list(D.REGRESSION),
                    "features": [{"name": k, "label": D.FEATURE_LABELS[k]} for k in D.FEATURES],
                    "activations": list(E.ACTIVATIONS), "losses": list(E.LOSSES),
                    "optimizers": {k: E.optimizer_available(k) for k in E.OPTIMIZERS},
                    "regularizers": list(E.REGULARIZERS), "limits": E.LIMITS, "lifted": E.LIFTED,
                    "defaults": E.DEFAULTS, "max_points": D.MAX_POINTS, "max_csv_bytes": D.MAX_CSV_BYTES,
                    "max_count": MAX_COUNT})

    def new_session(self):
        """POST /api/session: validate the config, build the network, return the full state."""
        body = self._payload()
        session = E.Session(body.get("config", {}))
        sid = body.get("session")
        old = None
        if isinstance(sid, str):
            try:
                old = self.server.sessions.get(sid)
            except ApiError:
                sid = None
        if old is not None:
            self._acquire(old)  # wait for a running step of the old network to finish
            old.lock.release()
        sid = self.server.sessions.put(session, sid)
        self._json({"session": sid, **session.state(full=True)})

    def step(self):
        """POST /api/step: train ``count`` epochs or minibatches under the session's lock."""
        body = self._payload()
        s = self._session(body.get("session"))
        unit, count = body.get("unit", "epoch"), body.get("count", 1)
        if unit not in ("epoch", "batch"):
            raise ApiError(400, f"unit must be 'epoch' or 'batch', got {str(unit)[:40]!r}")
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
            raise ApiError(400, f"count must be an integer in [1, {MAX_COUNT}], got {str(count)[:40]!r}")
        self._acquire(s)
        try:
            done = s.train(unit, count, MAX_STEPS, MAX_SECONDS)
            state = s.state()
        finally:
            s.lock.release()
        self._json({"done": done, **state})

    def inspect(self):
        """POST /api/inspect: a, z, δ and ∂L/∂W of the latest update (409 before the first)."""
        s = self._session(self._payload().get("session"))
        self._acquire(s)
        try:
            try:
                view = s.inspect()
            except ValueError as e:
                raise ApiError(409, str(e)) from None
        finally:
            s.lock.release()
        self._json(view)

    def upload(self):
        """POST /api/upload: parse and validate a CSV (≤ 1 MB, ≤ 10,000 points) into points."""
        raw = self._body(D.MAX_CSV_BYTES)
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ApiError(400, "the CSV must be UTF-8 text") from None
        points, is_cls = D.parse_csv(text)
        task = "classification" if is_cls else "regression"
        xy, y = D.check_points(points, task == "regression")
        pts = [[float(a), float(b), (int(c) if is_cls else float(c))] for (a, b), c in zip(xy.tolist(), y.tolist())]
        self._json({"points": pts, "task": task, "count": len(pts)})

    def export_weights(self):
        """GET /api/export/weights?session=ID: the state_dict as a safetensors download."""
        s = self._session()
        with s.lock:
            body = weights_bytes(s)
        self._send(200, body, "application/octet-stream",
                   {"Content-Disposition": 'attachment; filename="playground.safetensors"'})

    def export_script(self):
        """GET /api/export/script?session=ID: the Python script that retrains the network."""
        s = self._session()
        with s.lock:
            body = script_text(s).encode()
        self._send(200, body, "text/x-python; charset=utf-8",
                   {"Content-Disposition": 'attachment; filename="playground_net.py"'})


class PlaygroundServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` (one daemon thread per request) holding the session table."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, verbose: bool = False):
        super().__init__(address, Handler)
        self.sessions = Sessions()
        self.verbose = verbose
        self._slots = threading.BoundedSemaphore(MAX_THREADS)

    def process_request(self, request, client_address):
        # at most MAX_THREADS requests in flight; further connections wait in the listen backlog
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(host: str = "127.0.0.1", port: int = 8000, verbose: bool = False) -> PlaygroundServer:
    """Create (bind) the server; port 0 picks a free port (read it from ``server.server_address``).

    Raises: OSError if the address is in use or cannot be bound.
    """
    return PlaygroundServer((host, port), verbose)
