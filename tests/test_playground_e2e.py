"""End to end: the playground page in real headless Chromium (Debian's ``chromium`` driven by
Playwright's Python package; ``.ci/playground-deps.sh`` installs both, never ``playwright install``).

Clicks through: choose spiral, add a layer, pick ReLU, play, wait until the test loss falls below a
threshold, pause, open the backprop inspector, and keeps a screenshot in tests/artifacts/.
"""
import json
import os
import shutil
import threading
import time
import urllib.request
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
            # (Adam reaches the threshold in ~9 epochs here, plain SGD in ~36)
            opts = json.load(urllib.request.urlopen(url + "api/options", timeout=10))
            opt = "optimizer=adam&lr=0.01" if opts["optimizers"]["adam"] else "optimizer=sgd&lr=0.1"
            page.goto(url + "#features=x1,x2,x1sq,x2sq,sinx1,sinx2&layers=8,8&activations=tanh,tanh"
                            f"&loss=cross_entropy&{opt}&batch=10&seed=3")
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
            page.wait_for_function("!document.body.classList.contains('busy')")  # the last request lands
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


def test_bad_link_shows_the_servers_message_and_custom_points_train(url):
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "#layers=9&activations=relu")   # 9 neurons: over the limit without lift=1
            page.wait_for_selector("#error:not([hidden])")
            assert "layer 1: width must be an integer in [1, 8], got 9" in page.inner_text("#error")
            page.click("#dataset-xor")                        # still 9 neurons: refused again, page alive
            page.wait_for_function("location.hash.includes('dataset=xor')")
            assert "got 9" in page.inner_text("#error")
            page.goto(url + "#dataset=custom&layers=4&activations=tanh")
            page.reload()
            page.wait_for_selector("#custom-row:not([hidden])")
            box = page.locator("#heatmap").bounding_box()
            for i, (fx, fy) in enumerate([(0.2, 0.2), (0.8, 0.8), (0.25, 0.3), (0.7, 0.75), (0.3, 0.8), (0.75, 0.2)]):
                page.select_option("#click-label", str(i % 2))
                page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
                page.wait_for_function(f"document.querySelector('#point-count').textContent === '{i + 1} points'")
            page.wait_for_selector("#error", state="hidden")
            page.click("#step-epoch")
            page.wait_for_function("document.querySelector('#epoch').textContent === '000,001'")
            page.click("#dataset-reg-gauss")
            page.wait_for_function("document.querySelector('#legend').textContent.startsWith('colour: predicted value')")
            page.click("#step-epoch")
            page.wait_for_function("document.querySelector('#epoch').textContent === '000,001'")
            page.screenshot(path=str(ARTIFACTS / "playground_regression.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
