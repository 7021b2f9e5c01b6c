"""The playground's HTTP server: the standard library's ``ThreadingHTTPServer`` serving one static
page and a small JSON API. Safe to leave running on loopback:

- **Only this machine's pages.** Every request must name the bound address or ``localhost`` with the
  port in its ``Host`` header (so a DNS-rebinding site gets 403); API calls with a foreign ``Origin``
  are refused; POST bodies must be ``application/json`` (so a cross-site ``text/plain`` form post
  fails); every API call carries an ``X-Ember-Token`` header that the page gets from a same-origin
  ``GET /api/token`` (no CORS headers: other sites cannot read it), and a session answers only to the
  token that created it, so a foreign page can neither create sessions nor evict the user's.
- **Bounded work.** The request line and headers must arrive within ``HEADER_TIMEOUT`` seconds and a
  body within ``BODY_TIMEOUT`` (a short body is a prompt 400, never a hang); at most
  ``MAX_CONNECTIONS`` connections are served at once (one more gets 503 at once), with a listen
  backlog of 128; bodies are size-capped; sessions are capped; one training request at a time per
  session, within a step/time budget.
- **4xx, never 500, for bad input.** Every parameter is validated; non-finite, huge or deeply
  nested JSON numbers and structures are 400; a diverged network is reported in a normal answer.

Endpoints (JSON in, JSON out unless noted; all but the page and ``/api/token`` need the token):
    GET  /                       the page (ember/playground/static/index.html); /static/<file> its assets
    GET  /api/token              {"token"}: the header value this tab sends with every API call
    GET  /api/options            data sets, features, activations, losses, optimizers (and which exist), limits
    POST /api/session            {"config": {...}, "session"?: id} -> build (or rebuild) a network; full state
    POST /api/step               {"session", "unit": "epoch"|"batch", "count": 1..100} -> state after training
    POST /api/weight             {"session", "layer", "row", "col", "value"} -> set one weight; state
    POST /api/inspect            {"session"} -> the backprop inspector of the latest update
    POST /api/upload             {"csv": text, "task"?: "auto"|"classification"|"regression"} -> points
    GET  /api/export/weights?session=ID   the trained weights (safetensors, with the config in its metadata)
    GET  /api/export/script?session=ID    a Python script that rebuilds and retrains the network with ember
"""
from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import secrets
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from ..serialization import json_safe  # NaN/inf -> null (JSON has neither)
from . import data as D
from . import engine as E
from .export import script_text, weights_bytes

STATIC = os.path.join(os.path.dirname(__file__), "static")
STATIC_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
MAX_JSON_BYTES = 2 << 20        # a custom data set of 10,000 points (or a 1 MB CSV) fits with room to spare
MAX_SESSIONS = 16
MAX_COUNT = 100                 # epochs or minibatches asked for in one request
MAX_STEPS = 5000                # minibatch updates done in one request
MAX_SECONDS = 2.0               # training time spent in one request
LOCK_WAIT = 5.0                 # how long a request waits for its session's worker
MAX_CONNECTIONS = 128           # connections served at once; one more is answered 503 at once
LISTEN_BACKLOG = 128            # connections the kernel queues before accept (a backlog of 5 drops them)
HEADER_TIMEOUT = 5.0            # seconds for the request line and all headers (in total, not per read)
BODY_TIMEOUT = 3.0              # seconds for the whole body once the headers are in
WRITE_TIMEOUT = 10.0            # seconds a send may block on a client that does not read
MAX_INT_DIGITS = 30             # JSON integers longer than this are refused (no huge-int parsing)
TOKEN_HEADER = "X-Ember-Token"
# the page loads nothing from elsewhere, and no other site may frame it (clickjacking)
PAGE_POLICY = ("default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class ApiError(Exception):
    """An error the client caused: HTTP status and a message the page shows."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Sessions:
    """At most ``cap`` sessions by random id, each owned by the token that created it; the least
    recently used idle one makes room."""

    def __init__(self, cap: int = MAX_SESSIONS):
        self.cap, self._lock, self._s, self._owner = cap, threading.Lock(), {}, {}

    def get(self, sid, token: str | None = None) -> E.Session:
        """The session with id ``sid`` (marked as just used); with ``token``, only if that token owns it.
        Raises ApiError 404 if unknown (or owned by another token: other tabs' ids are not revealed)."""
        if not isinstance(sid, str) or sid not in self._s or (token is not None and self._owner.get(sid) != token):
            raise ApiError(404, f"unknown session {str(sid)[:40]!r}: press reset to start a new one")
        s = self._s[sid]
        s.last_used = time.monotonic()
        return s

    def put(self, session: E.Session, sid: str | None = None, token: str | None = None) -> str:
        """Store ``session`` under ``sid`` (replacing it) or under a new random id; returns the id.
        Raises ApiError 503 when the table is full and every session is busy training."""
        with self._lock:
            if sid not in self._s or self._owner.get(sid) != token:
                sid = secrets.token_hex(8)
                while len(self._s) >= self.cap:
                    idle = [k for k, v in self._s.items() if not v.lock.locked()]
                    if not idle:
                        raise ApiError(503, f"all {self.cap} sessions are busy; try again shortly")
                    old = min(idle, key=lambda k: self._s[k].last_used)
                    del self._s[old], self._owner[old]
            self._s[sid], self._owner[sid] = session, token
            return sid

    def __len__(self):
        return len(self._s)


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ApiError(400, f"request body holds an integer of {len(text.lstrip('-'))} digits "
                            f"(at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ApiError(400, f"request body holds a number out of range: {text[:40]}")
    return v


def _parse_constant(name: str):
    raise ApiError(400, f"request body holds {name}, which is not a JSON number")


def parse_json(raw: bytes) -> dict:
    """Decode a request body into a JSON object. Raises ApiError 400 for invalid UTF-8/JSON, NaN,
    infinities, numbers that overflow a float, integers over ``MAX_INT_DIGITS`` digits, nesting
    too deep for the parser, or a top level that is not an object."""
    try:
        obj = json.loads(raw.decode("utf-8"), parse_int=_parse_int, parse_float=_parse_float,
                         parse_constant=_parse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ApiError(400, f"request body is not valid JSON ({e})") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "request body must be a JSON object")
    return obj


class _DeadlineReader(io.RawIOBase):
    """The socket as a raw stream whose reads fail with TimeoutError once ``deadline`` (a
    ``time.monotonic()`` value, or None for no limit) has passed: a client sending one byte every few
    seconds cannot stretch a read past it, as a per-read socket timeout would allow."""

    def __init__(self, sock: socket.socket):
        super().__init__()
        self.sock, self.deadline = sock, None

    def readable(self):
        return True

    def readinto(self, b):
        if self.deadline is not None:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("read deadline passed")
            self.sock.settimeout(left)
        try:
            return self.sock.recv_into(b)
        finally:
            self.sock.settimeout(WRITE_TIMEOUT)


class Handler(BaseHTTPRequestHandler):
    """Routes one request; every failure becomes a JSON {"error": message} with a 4xx/5xx status."""

    server_version = "ember-playground"
    timeout = WRITE_TIMEOUT  # the socket's timeout outside reads (reads have their own deadlines)

    def setup(self):
        super().setup()
        self._raw = _DeadlineReader(self.connection)
        self.rfile = io.BufferedReader(self._raw)

    def handle_one_request(self):
        self._raw.deadline = time.monotonic() + self.server.header_timeout
        self._body_read = False
        super().handle_one_request()  # a TimeoutError there closes the connection quietly

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
        self.send_header("X-Frame-Options", "DENY")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200):
        try:
            text = json.dumps(obj, allow_nan=False, separators=(",", ":"))
        except ValueError:  # a NaN that slipped through: null, never a 500
            text = json.dumps(json_safe(obj), allow_nan=False, separators=(",", ":"))
        self._send(status, text.encode(), "application/json")

    def _body(self, limit: int) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None:
            raise ApiError(411, "a Content-Length header is required")
        if not length.strip().isdigit():
            raise ApiError(400, f"bad Content-Length {length[:20]!r}")
        n = int(length)
        if n > limit:
            self.close_connection = True  # don't read the oversized body
            raise ApiError(413, f"request body too large: {n} bytes (limit {limit} bytes)")
        self._raw.deadline = time.monotonic() + self.server.body_timeout
        self._body_read = True
        chunks, got = [], 0
        try:
            while got < n:
                chunk = self.rfile.read1(n - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
        except TimeoutError:
            pass
        finally:
            self._raw.deadline = None
        if got < n:
            self.close_connection = True
            raise ApiError(400, f"request body incomplete: Content-Length says {n} bytes, {got} arrived "
                                f"within {self.server.body_timeout:g} s")
        return b"".join(chunks)

    def _drain(self):
        """Read and drop a refused request's small unread body, briefly: closing a socket with unread
        data resets it, and the client could lose the error answer."""
        length = self.headers.get("Content-Length", "")
        if self.command != "POST" or self._body_read or not length.isdigit() or int(length) > MAX_JSON_BYTES:
            return
        self._raw.deadline = time.monotonic() + min(1.0, self.server.body_timeout)
        try:
            left = int(length)
            while left > 0:
                chunk = self.rfile.read1(left)
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:  # TimeoutError included: the answer goes out anyway
            pass
        finally:
            self._raw.deadline = None

    def _payload(self) -> dict:
        return parse_json(self._body(MAX_JSON_BYTES))

    def _allowed_hosts(self) -> set:
        host, port = self.server.server_address[:2]
        names = {"localhost", "127.0.0.1", "[::1]", f"[{host}]" if ":" in host else host}
        return {f"{h}:{port}" for h in names}

    def _check_request(self, path: str):
        """Host for every request; for the API: Origin, Sec-Fetch-Site, JSON content type, token."""
        host = self.headers.get("Host", "")
        if host.lower() not in self._allowed_hosts():
            raise ApiError(403, f"Host {host[:80]!r} is not allowed: open the playground at "
                                f"http://127.0.0.1:{self.server.server_address[1]}/")
        if not path.startswith("/api/"):
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin.lower() not in {"http://" + h for h in self._allowed_hosts()}:
            raise ApiError(403, f"cross-origin request from {origin[:80]!r} refused")
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            raise ApiError(403, "cross-site request refused")
        if self.command == "POST":
            ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                raise ApiError(415, f"POST bodies must be sent as Content-Type: application/json, "
                                    f"got {ctype[:60]!r}")
        if path != "/api/token" and not self.server.token_ok(self.headers.get(TOKEN_HEADER)):
            raise ApiError(403, f"missing or invalid {TOKEN_HEADER} header: reload the page "
                                "(the page gets its token from GET /api/token)")

    def _dispatch(self, routes: dict):
        path = urlsplit(self.path).path
        self._raw.deadline = None
        try:
            self._check_request(path)
            fn = routes.get(path)
            if fn is None:
                if path.startswith("/api/"):
                    raise ApiError(404, f"no endpoint {path[:80]}")
                return self._static(path)
            fn()
        except ApiError as e:
            self._drain()
            self._json({"error": str(e)}, e.status)
        except (E.ConfigError, D.DataError) as e:
            self._json({"error": str(e)}, 400)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # a bug must not take the server down: report it and go on
            self.log_error("internal error on %s: %r", path, e)
            self._json({"error": f"internal error: {type(e).__name__}: {e}"[:300]}, 500)

    def do_GET(self):
        self._dispatch({"/api/token": self.token, "/api/options": self.options,
                        "/api/export/weights": self.export_weights, "/api/export/script": self.export_script})

    do_HEAD = do_GET

    def do_POST(self):
        self._dispatch({"/api/session": self.new_session, "/api/step": self.step, "/api/weight": self.set_weight,
                        "/api/inspect": self.inspect, "/api/upload": self.upload})

    def _static(self, path):
        if self.command not in ("GET", "HEAD"):
            raise ApiError(405, f"{self.command} is not allowed on {path[:80]}")
        name = "index.html" if path == "/" else path[len("/static/"):] if path.startswith("/static/") else None
        if name not in STATIC_FILES:  # a fixed list: no path ever reaches the file system
            raise ApiError(404, f"not found: {path[:80]}")
        with open(os.path.join(STATIC, name), "rb") as f:
            self._send(200, f.read(), STATIC_FILES[name], {"Content-Security-Policy": PAGE_POLICY})

    def _session(self, sid=None):
        if sid is None:
            sid = parse_qs(urlsplit(self.path).query).get("session", [None])[0]
        return self.server.sessions.get(sid, self.headers.get(TOKEN_HEADER))

    def _acquire(self, s: E.Session):
        if not s.lock.acquire(timeout=LOCK_WAIT):
            raise ApiError(409, "this session is busy with another request; try again")

    # ---- endpoints ---------------------------------------------------------------------------
    def token(self):
        """GET /api/token: a fresh token for this tab (readable by same-origin pages only)."""
        self._json({"token": self.server.new_token(), "header": TOKEN_HEADER})

    def options(self):
        """GET /api/options: the choices the page offers, which optimizers exist, the limits."""
        self._json({"datasets": list(D.DATASETS), "regression": list(D.REGRESSION),
                    "features": [{"name": k, "label": D.FEATURE_LABELS[k]} for k in D.FEATURES],
                    "activations": list(E.ACTIVATIONS), "losses": list(E.LOSSES),
                    "optimizers": {k: E.optimizer_available(k) for k in E.OPTIMIZERS},
                    "regularizers": list(E.REGULARIZERS), "limits": E.LIMITS, "lifted": E.LIFTED,
                    "defaults": E.DEFAULTS, "max_points": D.MAX_POINTS, "max_csv_bytes": D.MAX_CSV_BYTES,
                    "max_count": MAX_COUNT, "max_weight": E.MAX_WEIGHT})

    def new_session(self):
        """POST /api/session: validate the config, build the network, return the full state."""
        body = self._payload()
        session = E.Session(body.get("config", {}))
        sid, token = body.get("session"), self.headers.get(TOKEN_HEADER)
        old = None
        if not isinstance(sid, str):
            sid = None
        else:
            try:
                old = self.server.sessions.get(sid, token)
            except ApiError:
                sid = None
        if old is not None:
            self._acquire(old)  # wait for a running step of the old network to finish
            old.lock.release()
        sid = self.server.sessions.put(session, sid, token)
        self._json({"session": sid, **session.state(full=True)})

    def step(self):
        """POST /api/step: train ``count`` epochs or minibatches under the session's lock (none once
        the network has diverged: the answer says so and the page offers a reset)."""
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

    def set_weight(self):
        """POST /api/weight: set one weight (a link of the diagram) to a value; the new state."""
        body = self._payload()
        s = self._session(body.get("session"))
        self._acquire(s)
        try:
            s.set_weight(body.get("layer"), body.get("row"), body.get("col"), body.get("value"))
            state = s.state()
        finally:
            s.lock.release()
        self._json(state)

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
        """POST /api/upload: parse and validate a CSV (≤ 1 MB, ≤ 10,000 points) into points, saying
        whether its labels were taken as classes or as regression targets, and why."""
        body = self._payload()
        text, task = body.get("csv"), body.get("task", "auto")
        if not isinstance(text, str):
            raise ApiError(400, "upload needs {\"csv\": the file's text}")
        if task not in ("auto", "classification", "regression"):
            raise ApiError(400, f"task must be auto, classification or regression, got {str(task)[:40]!r}")
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > D.MAX_CSV_BYTES:
            raise ApiError(413, f"CSV too large: {size} bytes (limit {D.MAX_CSV_BYTES} bytes)")
        points, guess, reason = D.parse_csv(text.lstrip("\ufeff"))
        if task == "auto":
            task = guess
        else:
            reason = f"taken as {task}, as asked"
        is_cls = task == "classification"
        xy, y = D.check_points(points, not is_cls)
        pts = [[float(a), float(b), (int(c) if is_cls else float(c))] for (a, b), c in zip(xy.tolist(), y.tolist())]
        self._json({"points": pts, "task": task, "task_reason": reason, "count": len(pts)})

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
    """``ThreadingHTTPServer`` (one daemon thread per connection, at most ``max_connections``)
    holding the session table and the secret behind the tabs' tokens."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address, verbose: bool = False, max_connections: int = MAX_CONNECTIONS,
                 header_timeout: float = HEADER_TIMEOUT, body_timeout: float = BODY_TIMEOUT):
        super().__init__(address, Handler)
        self.sessions = Sessions()
        self.verbose = verbose
        self.max_connections, self.header_timeout, self.body_timeout = max_connections, header_timeout, body_timeout
        self.active = 0
        self._count_lock = threading.Lock()
        self._secret = secrets.token_bytes(32)

    def new_token(self) -> str:
        """A fresh tab token: a random nonce and its HMAC under this server's secret (no state kept,
        so fetching tokens costs the server no memory)."""
        nonce = secrets.token_hex(16)
        return nonce + "." + hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def token_ok(self, token) -> bool:
        """Whether ``token`` was issued by this server."""
        if not isinstance(token, str) or token.count(".") != 1:
            return False
        nonce, mac = token.split(".")
        want = hmac.new(self._secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]
        return hmac.compare_digest(mac, want)

    def process_request(self, request, client_address):
        """Serve the connection on its own thread, or answer 503 at once when ``max_connections`` are busy."""
        with self._count_lock:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if full:  # answered by the accept loop itself, which must never wait on a client
            try:
                request.settimeout(0.5)
                body = b'{"error":"the playground is busy: too many connections; try again shortly"}'
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def _release(self):
        with self._count_lock:
            self.active -= 1

    def process_request_thread(self, request, client_address):
        """The connection's thread: handle it, then free its slot."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()


def make_server(host: str = "127.0.0.1", port: int = 8000, verbose: bool = False, **limits) -> PlaygroundServer:
    """Create (bind) the server; port 0 picks a free port (read it from ``server.server_address``).

    ``limits`` (tests): max_connections, header_timeout, body_timeout.
    Raises: OSError if the address is in use or cannot be bound.
    """
    return PlaygroundServer((host, port), verbose, **limits)
