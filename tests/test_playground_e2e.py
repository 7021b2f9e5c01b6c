"""End to end: the playground page in real headless Chromium (Debian's ``chromium`` driven by
Playwright's Python package; ``.ci/playground-deps.sh`` installs both, never ``playwright install``).

Clicks through: choose spiral, add a layer, pick ReLU, play, wait until the test loss falls below a
threshold, pause, open the backprop inspector, and keeps a screenshot in tests/artifacts/.
"""
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium; .ci/playground-deps.sh "
                "does it in CI)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                               "(pip install playwright; .ci/playground-deps.sh does it in CI)")

from ember.playground.server import make_server  # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).parent / "artifacts"
THRESHOLD = 0.35   # test cross-entropy on the spiral (chance level: ln 2 = 0.69)
DEADLINE = 40.0    # seconds of play allowed to get there


@pytest.fixture(scope="module")
def url():
    srv = make_server("127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


def test_spiral_relu_play_pause_inspect(url):
    ARTIFACTS.mkdir(exist_ok=True)
    errors, requests = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            # start from a shared link: features and optimizer come from the URL state
            page.goto(url + "#features=x1,x2,x1sq,x2sq,sinx1,sinx2&layers=8,8&activations=tanh,tanh"
                            "&loss=cross_entropy&optimizer=sgd&lr=0.1&batch=10&seed=3")
            page.wait_for_selector("#neuron-2-0")
            page.click("#dataset-spiral")
            page.wait_for_function("location.hash.includes('dataset=spiral')")
            page.click("#add-layer")
            page.wait_for_selector("#neuron-3-7")       # a third hidden layer of 8 neurons
            page.select_option("#activation", "relu")
            page.wait_for_function("location.hash.includes('activations=relu%2Crelu%2Crelu')")
            page.wait_for_function("document.querySelector('#act-3').value === 'relu'")
            page.click("#play")
            t0, loss = time.time(), float("inf")
            while time.time() - t0 < DEADLINE:
                text = page.inner_text("#loss-test")
                loss = float(text) if text.replace(".", "").replace("e-", "").isdigit() else loss
                if loss < THRESHOLD:
                    break
                time.sleep(0.2)
            page.click("#play")                          # pause
            assert loss < THRESHOLD, f"test loss still {loss} after {DEADLINE} s of play"
            epoch = page.inner_text("#epoch")
            time.sleep(0.3)
            assert page.inner_text("#epoch") == epoch, "training went on after pause"
            page.click("#inspect")
            page.wait_for_selector("#inspector:not([hidden])")
            page.wait_for_selector("#neuron-1-0 .ann .d")  # δ written next to each neuron
            rec = float(page.inner_text("#rec-err"))
            assert rec < 1e-5, f"autograd δ and deck-000 recursion disagree by {rec}"
            assert page.locator(".insp-table table").count() == 5  # inputs, 3 hidden, output
            page.screenshot(path=str(ARTIFACTS / "playground_e2e.png"), full_page=True)
            assert "dataset=spiral" in page.url and "activations=relu" in page.url
        finally:
            browser.close()
    assert not errors, errors
    outside = [u for u in requests if not u.startswith(url)]
    assert not outside, f"the page fetched something from outside the server: {outside}"
    assert (ARTIFACTS / "playground_e2e.png").stat().st_size > 10_000
