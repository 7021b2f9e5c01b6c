"""``ember playground``: a local, offline TensorFlow-Playground that trains with ember itself.

The page (``static/``: plain JavaScript and Canvas, no CDN, no build step) talks JSON to a
standard-library HTTP server (``server.py``); each browser tab's network is an ``engine.Session``
built from ``ember.nn`` layers and trained with ember's losses and ``ember.optim``, so what a
learner watches is exactly the code they can read. ``export.py`` writes the weights (safetensors)
and a script that retrains the same network with ember, reproducing the page's numbers.
"""
from __future__ import annotations

import signal
import threading
import webbrowser

from .server import make_server


def serve(host: str = "127.0.0.1", port: int = 8000, open_browser: bool = True, verbose: bool = False) -> None:
    """Serve the playground until Ctrl-C.

    Args:
        host: address to bind (loopback by default; anything else exposes the page to the network).
        port: TCP port (0 picks a free one). open_browser: open the page in the default browser.
    Raises:
        OSError: if the address cannot be bound (e.g. the port is in use).
    """
    server = make_server(host, port, verbose)
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C must stop the server even when started with SIGINT ignored (a shell's `cmd &`
        # without job control ignores it, and Python then never raises KeyboardInterrupt)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    h, p = server.server_address[:2]
    url = f"http://{'127.0.0.1' if h in ('0.0.0.0', '') else h}:{p}/"
    print(f"ember playground on {url}  (Ctrl-C stops it)", flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: bound to {host}: anyone who can reach this address can use the playground", flush=True)
    if open_browser:
        threading.Timer(0.5, webbrowser.open, (url,)).start()
    try:
        server.serve_forever()
    finally:
        server.server_close()


__all__ = ["serve", "make_server"]
