"""End to end: the playground page in real headless Chromium (Debian's ``chromium`` driven by
Playwright's Python package, never ``playwright install``: ``apt-get install -y chromium`` and
``pip install playwright``).

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
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

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
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            # start from a shared link: features and optimizer come from the URL state
            # (Adam reaches the threshold in ~9 epochs here, plain SGD in ~36)
            token = json.load(urllib.request.urlopen(url + "api/token", timeout=10))["token"]
            req = urllib.request.Request(url + "api/options", headers={"X-Ember-Token": token})
            opts = json.load(urllib.request.urlopen(req, timeout=10))
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
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
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


# ---- issue 15, item 4: the page at phone, tablet and desktop widths, and what it explains -------------
WIDTHS = (390, 800, 1920)
CONTROLS = ("header button, header select, #datasets button, .data input, .data select, .data button, "
            ".layers-head button, .layer-ctl button, .layer-ctl select, .layer-ctl > span, .node, .node .lab, "
            "#chart, #heatmap, .output input, #inspect")
OVERLAPS = """(sel) => {
  const els = [...document.querySelectorAll(sel)].filter((e) => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden');
  const name = (e) => e.id || (e.className && e.className.baseVal === undefined ? e.tagName + '.' + e.className : e.tagName) + ':' + (e.textContent || '').trim().slice(0, 12);
  const box = els.map((e) => e.getBoundingClientRect());
  const out = [];
  for (let i = 0; i < els.length; i++) for (let j = i + 1; j < els.length; j++) {
    if (els[i].contains(els[j]) || els[j].contains(els[i])) continue;
    const a = box[i], b = box[j];
    const w = Math.min(a.right, b.right) - Math.max(a.left, b.left), h = Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top);
    if (w > 1 && h > 1) out.push(name(els[i]) + ' / ' + name(els[j]));
  }
  return {count: els.length, overlaps: out};
}"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, url, width, fragment="", height=900, wait=True):
    """A new tab at ``width`` px on the playground (``fragment``: the URL state), its network drawn."""
    page = browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url + fragment)
    if wait:
        page.wait_for_selector("#neuron-1-0 canvas")
        page.wait_for_function("state !== null")
    return page


def step_epochs(page, n):
    for i in range(n):
        before = page.inner_text("#epoch")
        page.click("#step-epoch")
        page.wait_for_function(f"document.querySelector('#epoch').textContent !== '{before}'")


@pytest.mark.parametrize("width", WIDTHS)
def test_item15_4_no_overlapping_controls_and_no_sideways_scroll(browser, url, width):
    for fragment in ("", "#dataset=spirals&layers=6,6,6&activations=relu,tanh,relu&loss=cross_entropy"):
        page = open_page(browser, url, width, fragment)
        try:
            step_epochs(page, 1)
            r = page.evaluate(OVERLAPS, CONTROLS)
            assert r["count"] > 40 and not r["overlaps"], (width, fragment, r["overlaps"])
            sw, vw = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
            assert sw <= vw, f"the page scrolls sideways at {width} px: scrollWidth {sw}"
            if not fragment:
                page.screenshot(path=f"/tmp/playground_{width}.png", full_page=True)
            assert not page.errors, page.errors
        finally:
            page.close()
    # the most layers and neurons the page allows: the diagram scrolls inside its box, the page does not
    page = open_page(browser, url, width, "#layers=8,8,8,8,8,8&activations=" + ",".join(["relu"] * 6))
    try:
        sw, vw = page.evaluate("[document.documentElement.scrollWidth, innerWidth]")
        assert sw <= vw, f"6 hidden layers push the page sideways at {width} px: scrollWidth {sw}"
        r = page.evaluate(OVERLAPS, ".layer-ctl button, .layer-ctl select, .node")
        assert not r["overlaps"], r["overlaps"]
    finally:
        page.close()


def test_item15_4_arms_only_for_spirals_and_never_resets_circle(browser, url):
    page = open_page(browser, url, 1400)
    try:
        assert not page.is_visible("#arms")
        step_epochs(page, 1)
        page.evaluate("() => { const a = document.querySelector('#arms'); a.value = 5; a.dispatchEvent(new Event('change')); }")
        page.wait_for_function("location.hash.includes('arms=5')")
        page.wait_for_timeout(300)
        assert page.inner_text("#epoch") == "000,001", "changing arms reset the Circle network"
        page.click("#dataset-spirals")
        page.wait_for_selector("#arms", state="visible")
        page.wait_for_selector("#neuron-3-4")  # 5 arms -> 5 outputs
        page.click("#dataset-circle")
        page.wait_for_selector("#arms", state="hidden")
    finally:
        page.close()


def test_item15_4_loss_chart_axes_legend_log_scale_and_colour_legend(browser, url):
    page = open_page(browser, url, 1400, "#dataset=spirals&arms=4&loss=cross_entropy&lr=0.1")
    try:
        step_epochs(page, 3)
        legend = page.inner_text("#chart-legend")
        assert "training" in legend and "test" in legend and "log scale" in legend
        linear = page.evaluate("document.querySelector('#chart').toDataURL()")
        page.check("#log-scale")
        assert page.evaluate("document.querySelector('#chart').toDataURL()") != linear
        # tick labels are drawn left of the y axis and under the x axis: ink in both margins
        ink = page.evaluate("""() => { const c = document.querySelector('#chart'), g = c.getContext('2d');
            const dark = (x, y, w, h) => { const d = g.getImageData(x, y, w, h).data; let n = 0;
              for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 150) n++; return n; };
            return [dark(0, 0, 36, c.height - 18), dark(40, c.height - 16, c.width - 40, 16)]; }""")
        assert ink[0] > 20 and ink[1] > 20, ink
        text = page.inner_text("#legend")
        assert all(f"class {i}" in text for i in range(4)) and "class 4" not in text
        colours = page.eval_on_selector_all("#legend .swatch", "s => s.map((e) => getComputedStyle(e).backgroundColor)")
        assert colours[:2] == ["rgb(245, 147, 34)", "rgb(8, 119, 189)"]  # class 0 orange, class 1 blue
        assert page.inner_text("#output-label").replace("\n", " ").startswith("output 4 logits")
    finally:
        page.close()


def test_item15_4_mse_output_is_not_called_logits(browser, url):
    page = open_page(browser, url, 1400, "#loss=mse")
    try:
        label = page.inner_text("#output-label")
        assert "logits" not in label and "2 outputs" in label and "MSE" in label
    finally:
        page.close()


def test_item15_4_hovering_a_neuron_shows_its_map_in_the_large_view(browser, url):
    page = open_page(browser, url, 1400)
    try:
        output = page.evaluate("document.querySelector('#heatmap').toDataURL()")
        page.hover("#neuron-1-2")
        page.wait_for_function("document.querySelector('#heat-caption').textContent.includes('layer 1, neuron 3')")
        assert page.evaluate("document.querySelector('#heatmap').toDataURL()") != output
        page.hover("#feature-x1x2")
        page.wait_for_function("document.querySelector('#heat-caption').textContent.includes('x₁x₂')")
        page.mouse.move(5, 5)
        page.wait_for_function("document.querySelector('#heat-caption').textContent === ''")
        assert page.evaluate("document.querySelector('#heatmap').toDataURL()") == output
    finally:
        page.close()


def test_item15_4_clicking_a_link_edits_its_weight(browser, url):
    page = open_page(browser, url, 1400)
    try:
        # a point on a link that no other link covers, in page coordinates
        hit = page.evaluate("""() => { for (const p of document.querySelectorAll('#links path.hit')) {
            const q = p.getPointAtLength(p.getTotalLength() * 0.5), m = p.getScreenCTM();
            const x = m.a * q.x + m.c * q.y + m.e, y = m.b * q.x + m.d * q.y + m.f;
            if (document.elementFromPoint(x, y) === p) return {id: p.id, x, y}; } return null; }""")
        assert hit, "no clickable link"
        _, l, o, j = hit["id"].split("-")
        page.mouse.click(hit["x"], hit["y"])
        page.wait_for_selector("#weight-editor", state="visible")
        page.fill("#weight-input", "2.5")
        page.press("#weight-input", "Enter")
        page.wait_for_selector("#weight-editor", state="hidden")
        assert page.evaluate(f"state.weights[{l}][{o}][{j}]") == 2.5
        assert page.evaluate("state.edited") == 1
    finally:
        page.close()


def test_item15_4_hash_change_is_applied_and_epochs_agree_with_the_inspector(browser, url):
    page = open_page(browser, url, 1400)
    try:
        page.evaluate("location.hash = '#dataset=xor&layers=3&activations=relu&loss=cross_entropy'")
        page.wait_for_function("state.config.dataset === 'xor'")  # the server built the new network
        page.wait_for_selector("#dataset-xor.selected")
        assert page.locator("#neuron-1-2").count() == 1 and page.locator("#neuron-1-3").count() == 0
        assert page.locator("#neuron-2-1").count() == 1 and page.locator("#neuron-3-0").count() == 0
        assert page.input_value("#loss") == "cross_entropy"
        step_epochs(page, 3)
        page.click("#inspect")
        page.wait_for_selector("#inspector:not([hidden])")
        assert page.inner_text("#epoch") == "000,003"
        assert "epoch counter 000,003" in page.inner_text("#insp-info")
    finally:
        page.close()


def test_item14_9_a_diverged_network_says_so_and_reset_recovers(browser, url):
    page = open_page(browser, url, 1400, "#lr=10&layers=8,8&activations=relu,relu")
    try:
        for _ in range(5):
            page.click("#step-epoch")
            page.wait_for_function("!document.body.classList.contains('busy')")
            if page.is_visible("#error"):
                break
        assert "training diverged" in page.inner_text("#error")
        assert page.inner_text("#loss-test") == "null"
        page.select_option("#lr", "0.03")
        page.wait_for_selector("#error", state="hidden")
        step_epochs(page, 1)
        assert float(page.inner_text("#loss-test")) < 1
        assert not page.errors, page.errors
    finally:
        page.close()


def test_the_page_works_under_its_own_content_security_policy(browser, url):
    page = browser.new_page(viewport={"width": 1400, "height": 900})  # no bypass_csp: the real policy
    problems = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    try:
        response = page.goto(url)
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        page.wait_for_selector("#neuron-1-0 canvas")
        page.click("#step-epoch")
        page.wait_for_selector("#epoch:has-text('000,001')")
        page.hover("#neuron-1-0")
        page.wait_for_selector("#heat-caption:has-text('layer 1, neuron 1')")
        page.wait_for_selector("#legend .swatch")
        assert not problems, problems
    finally:
        page.close()


def test_item14_9_an_uploaded_csv_says_how_its_labels_were_read(browser, url):
    page = open_page(browser, url, 1400, "#dataset=custom&layers=4&activations=tanh", wait=False)
    try:
        page.wait_for_selector("#custom-row:not([hidden])")
        rows = "\n".join(f"{i % 7 - 3},{i % 5 - 2},{i % 9}" for i in range(60))
        page.set_input_files("#csv", files=[{"name": "nine.csv", "mimeType": "text/csv", "buffer": rows.encode()}])
        page.wait_for_selector("#csv-note:has-text('read as regression targets')")
        assert "labels are integers 0..8" in page.inner_text("#csv-note")
        page.wait_for_function("state && state.task === 'regression'")
        assert page.input_value("#task") == "regression"
    finally:
        page.close()
