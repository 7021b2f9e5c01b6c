// ember playground page: plain JavaScript + Canvas/SVG, talking JSON to ember/playground/server.py.
// All training happens in Python with ember; this file only draws and sends the settings.
"use strict";

const $ = (id) => document.getElementById(id);
const ORANGE = [245, 147, 34], BLUE = [8, 119, 189], GREY = [232, 234, 235];
const PALETTE = [ORANGE, BLUE, [44, 160, 44], [148, 103, 189], [214, 39, 40], [140, 86, 75], [227, 119, 194], [127, 127, 127]];
const DOMAIN = 6;
const LRS = [0.00001, 0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const RATES = [0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1, 3, 10];
const DROPS = [0, 0.1, 0.2, 0.3, 0.5];
const DATASET_NAMES = {circle: "Circle", xor: "XOR", gauss: "Gauss", spiral: "Spiral", spirals: "Spirals",
  "reg-plane": "Plane", "reg-gauss": "Multi-G", custom: "Custom"};

let OPTS = null;          // /api/options
let cfg = null;           // the current config (mirrored in the URL)
let customPoints = [];    // [[x1, x2, label]] for dataset "custom" (not in the URL)
let session = null, state = null, points = null, playing = false, busy = false;
let inspection = null, sample = 0;
let TOKEN = null;         // this tab's token (GET /api/token); the server wants it on every API call
let hovered = null;       // the node whose map the large view shows while the mouse is over it

// ---- helpers ------------------------------------------------------------------------------
function fmt(x) {
  if (x === null || x === undefined || !isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e4)) return x.toExponential(2);
  return x.toFixed(a < 1 ? 4 : 3);
}
function mix(a, b, t) { return [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * t)); }
function diverging(v) { return v < 0 ? mix(GREY, ORANGE, Math.min(1, -v)) : mix(GREY, BLUE, Math.min(1, v)); }
function rgb(c) { return `rgb(${c[0]},${c[1]},${c[2]})`; }
function b64(s) { const b = atob(s), a = new Uint8Array(b.length); for (let i = 0; i < b.length; i++) a[i] = b.charCodeAt(i); return a; }
function showError(msg) { const e = $("error"); e.textContent = msg; e.hidden = !msg; }
function epochText(n) { return String(n).padStart(6, "0").replace(/(\d{3})$/, ",$1"); }

// every API call: JSON body, this tab's token in a header (other pages can neither read the token
// nor send this header cross-site, so they cannot drive or evict this tab's session)
async function fetchApi(path, body) {
  const headers = {"X-Ember-Token": TOKEN};
  const init = body === undefined ? {headers} : {method: "POST", body: JSON.stringify(body),
    headers: Object.assign(headers, {"Content-Type": "application/json"})};
  const r = await fetch(path, init);
  if (!r.ok) {
    let j; try { j = await r.json(); } catch (e) { j = {}; }
    const err = new Error(j.error || `HTTP ${r.status}`); err.status = r.status; throw err;
  }
  return r;
}
async function api(path, body) { return (await fetchApi(path, body)).json(); }
async function download(path, filename) {  // a link cannot send the token header: fetch, then save
  try {
    const url = URL.createObjectURL(await (await fetchApi(path)).blob());
    const a = document.createElement("a"); a.href = url; a.download = filename;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } catch (e) { showError(e.message); }
}

// ---- state in the URL -----------------------------------------------------------------------
const LIST_KEYS = ["features", "layers", "activations"];
function readHash() {
  const c = JSON.parse(JSON.stringify(OPTS.defaults));
  const q = new URLSearchParams(location.hash.slice(1));
  for (const [k, v] of q) {
    if (!(k in c)) continue;
    if (LIST_KEYS.includes(k)) c[k] = v === "" ? [] : v.split(",").map((s) => (k === "layers" ? Number(s) : s));
    else if (k === "lift") c[k] = v === "1" || v === "true";
    else if (typeof c[k] === "number") c[k] = Number(v);
    else c[k] = v;
  }
  return c;
}
function writeHash() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(cfg)) {
    if (k === "points" || (k === "task" && cfg.dataset !== "custom")) continue;
    q.set(k, Array.isArray(v) ? v.join(",") : (typeof v === "boolean" ? (v ? "1" : "0") : String(v)));
  }
  history.replaceState(null, "", "#" + q.toString());
}
function onHashChange() {  // an edited or pasted link: rebuild from it (replaceState fires no event)
  const c = readHash(), key = (k) => JSON.stringify(Object.assign({}, k, k.dataset === "spirals" ? {} : {arms: 0}));
  const rebuild = key(c) !== key(cfg);  // arms only matter for spirals
  cfg = c; syncControls();
  if (rebuild) reset();
}

// ---- drawing: small maps -------------------------------------------------------------------------
function drawMap(canvas, n, colorAt, smooth) {
  const off = document.createElement("canvas");
  off.width = off.height = n;
  const ctx = off.getContext("2d"), img = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const c = colorAt(i);
    img.data.set([c[0], c[1], c[2], 255], 4 * i);
  }
  ctx.putImageData(img, 0, 0);
  const g = canvas.getContext("2d");
  g.imageSmoothingEnabled = smooth !== false;
  g.clearRect(0, 0, canvas.width, canvas.height);
  g.drawImage(off, 0, 0, canvas.width, canvas.height);
}
function featureValue(name, a, b) {
  return {x1: a, x2: b, x1sq: a * a, x2sq: b * b, x1x2: a * b, sinx1: Math.sin(a), sinx2: Math.sin(b)}[name];
}
const featureCache = {};
function drawFeature(canvas, name) {
  if (featureCache[name]) { canvas.getContext("2d").drawImage(featureCache[name], 0, 0); return; }
  const n = 24, vals = [];
  let m = 0;
  for (let r = 0; r < n; r++) for (let c = 0; c < n; c++) {
    const a = ((c + 0.5) / n) * 2 * DOMAIN - DOMAIN, b = DOMAIN - ((r + 0.5) / n) * 2 * DOMAIN;
    const v = featureValue(name, a, b); vals.push(v); m = Math.max(m, Math.abs(v));
  }
  drawMap(canvas, n, (i) => diverging(vals[i] / (m || 1)));
  const keep = document.createElement("canvas"); keep.width = canvas.width; keep.height = canvas.height;
  keep.getContext("2d").drawImage(canvas, 0, 0); featureCache[name] = keep;
}
function drawQuantized(canvas, item) {
  const q = b64(item.map), n = Math.round(Math.sqrt(q.length));
  drawMap(canvas, n, (i) => diverging(q[i] / 127.5 - 1));
}

// ---- controls ------------------------------------------------------------------------------------
function fillSelect(sel, values, label) {
  for (const v of values) { const o = document.createElement("option"); o.value = String(v); o.textContent = label ? label(v) : String(v); sel.appendChild(o); }
}
function setupControls() {
  fillSelect($("lr"), LRS);
  fillSelect($("activation"), OPTS.activations);
  fillSelect($("loss"), OPTS.losses, (v) => (v === "cross_entropy" ? "cross-entropy" : "MSE"));
  fillSelect($("optimizer"), Object.keys(OPTS.optimizers), (v) => ({sgd: "SGD", momentum: "SGD + momentum 0.9", adam: "Adam", rmsprop: "RMSprop", adagrad: "Adagrad"}[v] + (OPTS.optimizers[v] ? "" : " (unavailable)")));
  for (const o of $("optimizer").options) o.disabled = !OPTS.optimizers[o.value];
  fillSelect($("reg"), OPTS.regularizers, (v) => (v === "none" ? "None" : v.toUpperCase()));
  fillSelect($("reg-rate"), RATES);
  fillSelect($("dropout"), DROPS);
  fillSelect($("click-label"), [0, 1, 2, 3, 4, 5, 6, 7], (v) => `class ${v}`);
  const ds = $("datasets");
  for (const name of OPTS.datasets) {
    const b = document.createElement("button");
    b.id = "dataset-" + name; b.title = DATASET_NAMES[name] || name; b.dataset.name = name;
    const c = document.createElement("canvas"); c.width = c.height = 44; b.appendChild(c);
    const s = document.createElement("span"); s.textContent = DATASET_NAMES[name] || name; b.appendChild(s);
    b.onclick = () => { cfg.dataset = name; if (OPTS.regression.includes(name)) cfg.loss = "mse"; changed(); };
    ds.appendChild(b);
    drawDatasetIcon(c, name);
  }
  const on = (id, key, conv) => { $(id).onchange = () => { cfg[key] = conv($(id).value); changed(); }; };
  on("lr", "lr", Number); on("loss", "loss", String); on("optimizer", "optimizer", String);
  on("reg", "reg", String); on("reg-rate", "reg_rate", Number); on("dropout", "dropout", Number);
  on("task", "task", String);
  $("activation").onchange = () => { const a = $("activation").value; if (a) { cfg.activations = cfg.layers.map(() => a); changed(); } };
  for (const [id, key] of [["ratio", "ratio"], ["noise", "noise"], ["batch", "batch"], ["arms", "arms"]]) {
    $(id).oninput = () => { $(id + "-v").textContent = $(id).value; };
    $(id).onchange = () => {
      cfg[key] = Number($(id).value);
      if (key === "arms" && cfg.dataset !== "spirals") { writeHash(); return; }  // no other set has arms
      changed();
    };
  }
  $("regenerate").onclick = () => { cfg.seed = Math.floor(Math.random() * 1e6); changed(); };
  $("reset").onclick = () => reset();
  $("play").onclick = () => (playing ? pause() : play());
  $("step-epoch").onclick = () => { pause(); step("epoch"); };
  $("step-batch").onclick = () => { pause(); step("batch"); };
  $("add-layer").onclick = () => {
    const lim = limits();
    if (cfg.layers.length >= lim.layers) return showError(`at most ${lim.layers} hidden layers (add lift=1 to the URL to raise the limit)`);
    cfg.layers.push(cfg.layers.length ? cfg.layers[cfg.layers.length - 1] : 4);
    cfg.activations.push(cfg.activations.length ? cfg.activations[cfg.activations.length - 1] : "tanh");
    changed();
  };
  $("remove-layer").onclick = () => { if (cfg.layers.length) { cfg.layers.pop(); cfg.activations.pop(); changed(); } };
  $("show-test").onchange = drawHeatmap;
  $("discretize").onchange = drawHeatmap;
  $("heatmap").onclick = addPoint;
  $("csv").onchange = uploadCsv;
  $("clear-points").onclick = () => { customPoints = []; changed(); };
  $("export-weights").onclick = () => session && download(`/api/export/weights?session=${session}`, "playground.safetensors");
  $("export-script").onclick = () => session && download(`/api/export/script?session=${session}`, "playground_net.py");
  $("log-scale").onchange = drawChart;
  $("weight-editor").onsubmit = (ev) => { ev.preventDefault(); setWeight(); };
  $("weight-cancel").onclick = () => { $("weight-editor").hidden = true; };
  window.addEventListener("hashchange", onHashChange);
  $("net").onmouseleave = () => { if (hovered) { hovered = null; drawHeatmap(); } };
  $("copy-link").onclick = () => { navigator.clipboard && navigator.clipboard.writeText(location.href); $("copy-link").textContent = "Link copied (custom points are not in it)"; };
  $("inspect").onclick = openInspector;
  $("close-inspector").onclick = () => { $("inspector").hidden = true; inspection = null; drawNetwork(); };
  $("prev-sample").onclick = () => { if (inspection) { sample = (sample + inspection.samples - 1) % inspection.samples; renderInspector(); } };
  $("next-sample").onclick = () => { if (inspection) { sample = (sample + 1) % inspection.samples; renderInspector(); } };
  window.addEventListener("resize", drawNetwork);
}
function limits() { return cfg.lift ? OPTS.lifted : OPTS.limits; }

function drawDatasetIcon(canvas, name) {
  const g = canvas.getContext("2d"), s = canvas.width;
  g.fillStyle = "#fff"; g.fillRect(0, 0, s, s);
  const P = (x, y, c) => { g.fillStyle = rgb(c); g.fillRect((x / DOMAIN + 1) * s / 2 - 1, (1 - y / DOMAIN) * s / 2 - 1, 2.5, 2.5); };
  for (let i = 0; i < 160; i++) {
    const t = i / 160, u = ((i * 7919) % 160) / 160 * 12 - 6, v = ((i * 104729) % 157) / 157 * 12 - 6;
    if (name === "circle") { const r = (i % 2 ? 2 : 4.3) * (0.6 + 0.4 * ((i * 31) % 10) / 10), a = i * 2.4; P(r * Math.sin(a), r * Math.cos(a), i % 2 ? BLUE : ORANGE); }
    else if (name === "xor") P(u, v, u * v >= 0 ? BLUE : ORANGE);
    else if (name === "gauss") { const k = i % 2, o = (k ? 2 : -2); P(o + Math.sin(i * 1.7) * 1.3, o + Math.cos(i * 2.3) * 1.3, k ? BLUE : ORANGE); }
    else if (name === "spiral" || name === "spirals") {
      const arms = name === "spiral" ? 2 : 3, k = i % arms, r = 5 * t, a = 1.75 * t * 2 * Math.PI + 2 * Math.PI * k / arms;
      P(r * Math.sin(a), r * Math.cos(a), PALETTE[k]);
    } else if (name === "reg-plane") P(u, v, diverging((u + v) / 12));
    else if (name === "reg-gauss") P(u, v, diverging(Math.sin(u) * Math.cos(v)));
    else if (name === "custom") { if (i < 24) P(u * 0.8, v * 0.8, PALETTE[i % 3]); }
  }
}

function syncControls() {
  $("lr").value = String(cfg.lr);
  if (![...$("lr").options].some((o) => o.value === String(cfg.lr))) { fillSelect($("lr"), [cfg.lr]); $("lr").value = String(cfg.lr); }
  $("loss").value = cfg.loss; $("optimizer").value = cfg.optimizer; $("reg").value = cfg.reg;
  $("reg-rate").value = String(cfg.reg_rate); $("dropout").value = String(cfg.dropout);
  const same = cfg.activations.length && cfg.activations.every((a) => a === cfg.activations[0]);
  $("activation").value = same ? cfg.activations[0] : "";
  for (const [id, key] of [["ratio", "ratio"], ["noise", "noise"], ["batch", "batch"], ["arms", "arms"]]) { $(id).value = cfg[key]; $(id + "-v").textContent = cfg[key]; }
  $("arms-row").hidden = cfg.dataset !== "spirals";
  $("custom-row").hidden = cfg.dataset !== "custom";
  $("task").value = cfg.task;
  $("click-label").disabled = cfg.task === "regression";
  $("seed-v").textContent = cfg.seed;
  $("n-layers").textContent = `${cfg.layers.length} HIDDEN LAYER${cfg.layers.length === 1 ? "" : "S"}`;
  for (const b of $("datasets").children) b.classList.toggle("selected", b.dataset.name === cfg.dataset);
  $("point-count").textContent = cfg.dataset === "custom" ? `${customPoints.length} points` : "";
  $("weight-editor").hidden = true;
}

// ---- talking to the server ---------------------------------------------------------------------
function changed() { writeHash(); syncControls(); reset(); }

async function reset() {
  pause();
  const wasInspecting = !$("inspector").hidden;
  inspection = null; $("inspector").hidden = true;
  syncControls();
  if (cfg.dataset === "custom" && customPoints.length < 4) {
    showError("Custom data: click on the output map to add at least 4 points (two classes), or upload a CSV.");
    session = null; state = null; points = {train: customPoints.map((p) => p), test: []};
    drawNetwork(); drawHeatmap(); return;
  }
  const body = {config: Object.assign({}, cfg, cfg.dataset === "custom" ? {points: customPoints} : {})};
  if (session) body.session = session;
  try {
    const s = await api("/api/session", body);
    session = s.session; points = {train: s.train_points, test: s.test_points};
    showError(""); render(s);
    if (wasInspecting) $("inspector").hidden = true;
  } catch (e) { showError(e.message); }
}

async function step(unit, count) {
  if (!session || busy) return false;
  busy = true; document.body.classList.add("busy");  // tests wait for the in-flight request
  try {
    const s = await api("/api/step", {session, unit, count: count || 1});
    render(s);
    if (s.diverged) { pause(); return false; }
    showError(""); return true;
  } catch (e) {
    if (e.status === 404) { session = null; await reset(); } else showError(e.message);
    pause(); return false;
  } finally { busy = false; document.body.classList.remove("busy"); }
}

function play() {
  if (!session) return;
  playing = true; $("play").classList.add("playing"); $("play").innerHTML = "&#x275A;&#x275A;";
  let count = 1;  // epochs per request: grows while a request takes under ~150 ms (small nets)
  const loop = async () => {
    if (!playing) return;
    const t0 = performance.now();
    await step("epoch", count);
    const ms = performance.now() - t0;
    count = Math.max(1, Math.min(OPTS.max_count, 20, Math.round(count * 150 / Math.max(ms, 1))));
    if (playing) requestAnimationFrame(loop);
  };
  loop();
}
function pause() { playing = false; $("play").classList.remove("playing"); $("play").innerHTML = "&#x25B6;"; }

// ---- rendering -----------------------------------------------------------------------------------
function render(s) {
  state = s;
  $("epoch").textContent = epochText(s.epoch);
  if (s.diverged) showError(s.diverged);
  $("steps").textContent = `${s.steps} updates · ${s.batches_per_epoch} per epoch`;
  $("loss-test").textContent = fmt(s.loss.test);
  $("loss-train").textContent = fmt(s.loss.train);
  drawChart(); drawHeatmap(); drawNetwork(); drawGradNorms();
}

function niceTicks(lo, hi, n) {  // about n round numbers covering [lo, hi]
  const step0 = (hi - lo) / Math.max(n, 1), mag = Math.pow(10, Math.floor(Math.log10(step0)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= step0) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.round(v / step) * step);
  return out;
}
function drawChart() {  // train and test loss against epochs: axes, ticks, optional log scale
  const c = $("chart"), g = c.getContext("2d"), h = state ? state.history : [];
  const log = $("log-scale").checked, L = 40, R = 8, T = 6, B = 18, W = c.width - L - R, H = c.height - T - B;
  g.clearRect(0, 0, c.width, c.height);
  g.font = "10px sans-serif"; g.fillStyle = "#555"; g.strokeStyle = "#bbb"; g.lineWidth = 1;
  g.beginPath(); g.moveTo(L, T); g.lineTo(L, T + H); g.lineTo(L + W, T + H); g.stroke();
  const xmax = Math.max(h.length ? h[h.length - 1][0] : 0, 1);
  const vals = []; for (const p of h) for (const v of [p[1], p[2]]) if (v !== null && isFinite(v) && (!log || v > 0)) vals.push(v);
  let lo = 0, hi = Math.max(...vals, 1e-9);
  if (log) {  // the data's own range in decades (at least 0.3 of one), so slow progress is visible
    lo = Math.log10(vals.length ? Math.min(...vals) : 0.1); hi = Math.log10(vals.length ? hi : 1);
    const pad = Math.max(0.3 - (hi - lo), 0) / 2 + 0.03 * (hi - lo);
    lo -= pad; hi += pad;
  }
  const X = (e) => L + (e / xmax) * W, Y = (v) => T + H - ((log ? Math.log10(v) : v) - lo) / (hi - lo) * H;
  g.textAlign = "right"; g.textBaseline = "middle";
  const yt = log ? logTicks(lo, hi) : niceTicks(0, hi, 3);
  for (const v of yt) {
    const y = Y(v); if (y < T - 1 || y > T + H + 1) continue;
    g.fillText(fmtTick(v), L - 4, y);
    g.strokeStyle = "#eee"; g.beginPath(); g.moveTo(L + 1, y); g.lineTo(L + W, y); g.stroke();
  }
  g.textAlign = "center"; g.textBaseline = "top";
  for (const e of niceTicks(0, xmax, 4)) g.fillText(fmtTick(e), X(e), T + H + 3);
  for (const [k, color, w] of [[1, "#999", 1], [2, "#000", 1.5]]) {
    g.strokeStyle = color; g.lineWidth = w; g.beginPath();
    let on = false;
    for (const p of h) {
      const v = p[k];
      if (v === null || !isFinite(v) || (log && v <= 0)) { on = false; continue; }
      const x = X(p[0]), y = Math.max(T, Math.min(T + H, Y(v)));
      on ? g.lineTo(x, y) : g.moveTo(x, y); on = true;
    }
    g.stroke();
  }
}
function fmtTick(v) { return Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(0) : String(+v.toPrecision(3)); }
function logTicks(lo, hi) {  // 1-2-5 ticks between 10^lo and 10^hi; round linear ones over a short range
  for (const ms of [[1], [1, 2, 5]]) {
    const out = [];
    for (let k = Math.floor(lo); k <= Math.ceil(hi); k++) for (const m of ms) {
      const v = m * Math.pow(10, k), e = Math.log10(v);
      if (e >= lo && e <= hi) out.push(v);
    }
    if (out.length >= 3) return out.length > 6 ? out.filter((_, i) => i % 2 === 0) : out;
  }
  return niceTicks(Math.pow(10, lo), Math.pow(10, hi), 3);
}

function drawHeatmap() {
  const c = $("heatmap"), g = c.getContext("2d");
  g.fillStyle = "#fff"; g.fillRect(0, 0, c.width, c.height);
  const disc = $("discretize").checked;
  $("heat-caption").textContent = hovered ? `showing ${hovered.label} (move the mouse away for the output)` : "";
  const unit = hovered && !hovered.feature && state && state.neurons[hovered.l] ? state.neurons[hovered.l][hovered.i] : null;
  if (hovered && hovered.feature) drawFeature(c, hovered.feature);
  else if (unit) drawQuantized(c, unit);
  else if (state) {
    const h = state.heatmap, n = h.size;
    if (h.kind === "regression") {
      const v = b64(h.value);
      drawMap(c, n, (i) => { let x = v[i] / 127.5 - 1; if (disc) x = Math.sign(x); return mix(GREY, diverging(x), 0.85); }, !disc);
    } else {
      const k = b64(h.cls), conf = b64(h.conf);
      drawMap(c, n, (i) => mix(GREY, PALETTE[k[i]], disc ? 0.75 : 0.75 * conf[i] / 255), !disc);
    }
  }
  const P = (p, stroke) => {
    const x = (p[0] / DOMAIN + 1) * c.width / 2, y = (1 - p[1] / DOMAIN) * c.height / 2;
    const reg = state ? state.task === "regression" : cfg.task === "regression";
    const col = reg ? diverging(p[2]) : PALETTE[p[2]] || GREY;
    g.beginPath(); g.arc(x, y, 3.2, 0, 2 * Math.PI); g.fillStyle = rgb(col); g.fill();
    g.lineWidth = 1; g.strokeStyle = reg && stroke === "#fff" ? "#888" : stroke; g.stroke();
  };
  if (points) {
    for (const p of points.train) P(p, "#fff");
    if ($("show-test").checked) for (const p of points.test) P(p, "#000");
  }
  if (inspection) {  // ring the sample the inspector shows
    const p = inspection.points[sample], x = (p[0] / DOMAIN + 1) * c.width / 2, y = (1 - p[1] / DOMAIN) * c.height / 2;
    g.beginPath(); g.arc(x, y, 8, 0, 2 * Math.PI); g.lineWidth = 2.5; g.strokeStyle = "#c0392b"; g.stroke();
  }
  // axes ticks
  g.fillStyle = "#555"; g.font = "10px sans-serif";
  for (const t of [-6, -3, 0, 3, 6]) g.fillText(String(t), (t / DOMAIN + 1) * c.width / 2 - (t > 0 ? 10 : t === 0 ? 3 : 0), c.height - 2);
  drawLegend();
}

function drawLegend() {  // which colour is which class (or value), as swatches
  const box = $("legend"), classes = state ? state.classes : 0;
  const sw = (c) => `<span class="swatch" style="background:${rgb(c)}"></span>`;
  if (hovered) {
    box.innerHTML = `${sw(ORANGE)} negative ${sw(GREY)} 0 ${sw(BLUE)} positive <span class="muted">(this unit's value, scaled to its largest magnitude)</span>`;
  } else if (state && state.task === "regression") {
    box.innerHTML = `colour: predicted value ${sw(ORANGE)} −1 ${sw(GREY)} 0 ${sw(BLUE)} +1`;
  } else {
    box.innerHTML = "colours: " + Array.from({length: classes}, (_, i) => `<span class="cls">${sw(PALETTE[i])} class ${i}</span>`).join(" ")
      + ' <span class="muted">(background: predicted class, paler = less confident)</span>';
  }
}

function addPoint(ev) {
  if (cfg.dataset !== "custom") return;
  const c = $("heatmap"), r = c.getBoundingClientRect();
  const x = ((ev.clientX - r.left) / r.width) * 2 * DOMAIN - DOMAIN, y = DOMAIN - ((ev.clientY - r.top) / r.height) * 2 * DOMAIN;
  const label = cfg.task === "regression" ? (x + y) / (2 * DOMAIN) : Number($("click-label").value);
  customPoints.push([Math.round(x * 1000) / 1000, Math.round(y * 1000) / 1000, label]);
  changed();
}

async function uploadCsv() {
  const f = $("csv").files[0];
  if (!f) return;
  if (f.size > OPTS.max_csv_bytes) { showError(`CSV too large: ${f.size} bytes (limit ${OPTS.max_csv_bytes})`); return; }
  try {
    const r = await api("/api/upload", {csv: await f.text()});
    customPoints = r.points; cfg.task = r.task; changed();
    $("csv-note").textContent = `${r.count} points: ${r.task_reason}. Change "Task" to read them the other way.`;
  } catch (e) { showError(e.message); }
}

// ---- the network diagram -------------------------------------------------------------------------
const COL_MIN = 70;  // the narrowest column spacing at which layer controls do not overlap
function layout() {  // node size and positions; the diagram scrolls sideways in its box when too wide
  const net = $("net"), sizes = [OPTS.features.length, ...cfg.layers, state ? (state.classes || 1) : 1];
  const cols = sizes.length, x0 = 56, avail = net.parentElement.clientWidth;
  const H = net.clientHeight, maxN = Math.max(...sizes), top = 64;
  let node = Math.max(10, Math.min(38, (H - top - 10) / maxN - 14));
  const W = Math.max(avail, x0 + (cols - 1) * COL_MIN + node + 12);
  net.style.width = W + "px";
  const x1 = W - node - 12, space = cols === 1 ? W : (x1 - x0) / (cols - 1);
  node = Math.min(node, space * 0.55);
  const gap = node + Math.min(14, node * 0.4);
  const xs = sizes.map((_, i) => (cols === 1 ? x0 : x0 + (i * (x1 - x0)) / (cols - 1)));
  return {node, gap, top, xs, sizes};
}

function drawNetwork() {
  if (!OPTS || !cfg) return;
  const L = layout(), nodes = $("nodes"), svg = $("links");
  nodes.innerHTML = ""; svg.innerHTML = "";
  const enabled = OPTS.features.map((f) => cfg.features.includes(f.name));
  const pos = [];  // pos[layer][i] = {x, y} of each drawn node (layer 0: all features)
  L.sizes.forEach((n, l) => {
    pos.push([]);
    for (let i = 0; i < n; i++) pos[l].push({x: L.xs[l], y: L.top + i * L.gap});
  });
  // links: weights[l] is (out, in) over *enabled* features for l = 0
  const featIdx = OPTS.features.map((f, i) => i).filter((i) => enabled[i]);
  const NS = "http://www.w3.org/2000/svg";
  if (state) {
    state.weights.forEach((W, l) => {
      const grads = inspection ? inspection.grads[l] : null;
      let gmax = 1e-12; if (grads) for (const r of grads) for (const v of r) gmax = Math.max(gmax, Math.abs(v));
      W.forEach((row, o) => row.forEach((w, j) => {
        const a = pos[l][l === 0 ? featIdx[j] : j], b = pos[l + 1][o];
        if (!a || !b) return;
        const p = document.createElementNS(NS, "path");
        const xa = a.x + L.node, ya = a.y + L.node / 2, xb = b.x, yb = b.y + L.node / 2, m = (xa + xb) / 2;
        p.setAttribute("d", `M${xa},${ya} C${m},${ya} ${m},${yb} ${xb},${yb}`);
        let tip = `w = ${fmt(w)}  (layer ${l + 1}, ${l === 0 ? OPTS.features[featIdx[j]].name : "neuron " + (j + 1)} → ${o + 1}); click to edit`;
        if (grads) {
          const g = grads[o][j], s = inspection.delta[l][sample][o] * inspection.a[l][sample][j];
          p.setAttribute("stroke", rgb(g > 0 ? BLUE : ORANGE));
          p.setAttribute("stroke-width", String(0.6 + 6 * Math.abs(g) / gmax));
          p.setAttribute("stroke-dasharray", "4 2");
          tip += `\n∂L/∂w (batch, .grad) = ${fmt(g)}\nthis sample: δ·a = ${fmt(s)}`;
        } else {
          p.setAttribute("stroke", rgb(w > 0 ? BLUE : ORANGE));
          p.setAttribute("stroke-width", String(Math.max(0.4, Math.min(7, Math.abs(w) * 2))));
        }
        p.setAttribute("stroke-opacity", "0.75");
        svg.appendChild(p);
        const hit = document.createElementNS(NS, "path");  // a wide invisible twin: easy to click
        hit.setAttribute("d", p.getAttribute("d")); hit.setAttribute("class", "hit"); hit.id = `link-${l}-${o}-${j}`;
        const t = document.createElementNS(NS, "title"); t.textContent = tip; hit.appendChild(t);
        const from = l === 0 ? OPTS.features[featIdx[j]].label : `neuron ${j + 1}`;
        hit.onclick = (ev) => editWeight(ev, l, o, j, w, from);
        svg.appendChild(hit);
      }));
    });
  }
  // nodes
  const mk = (x, y, cls, title) => {
    const d = document.createElement("div"); d.className = "node " + cls;
    Object.assign(d.style, {left: x + "px", top: y + "px", width: L.node + "px", height: L.node + "px"});
    const c = document.createElement("canvas"); c.width = c.height = 24; d.appendChild(c);
    d.title = title; nodes.appendChild(d); return {d, c};
  };
  OPTS.features.forEach((f, i) => {
    const p = pos[0][i], {d, c} = mk(p.x, p.y, "feature" + (enabled[i] ? "" : " off"), `${f.label}: click to toggle`);
    d.id = "feature-" + f.name;
    const lab = document.createElement("span"); lab.className = "lab"; lab.textContent = f.label; d.appendChild(lab);
    drawFeature(c, f.name);
    hoverMap(d, {label: `feature ${f.label}`, feature: f.name});
    d.onclick = () => {
      const on = cfg.features.includes(f.name);
      if (on && cfg.features.length === 1) return showError("keep at least one input feature");
      cfg.features = on ? cfg.features.filter((x) => x !== f.name) : OPTS.features.map((x) => x.name).filter((x) => x === f.name || cfg.features.includes(x));
      changed();
    };
    if (inspection && enabled[i]) annotate(d, inspection.a[0][sample][featIdx.indexOf(i)], null);
  });
  for (let l = 1; l < L.sizes.length; l++) {
    const out = l === L.sizes.length - 1;
    for (let i = 0; i < L.sizes[l]; i++) {
      const p = pos[l][i];
      const bias = state ? state.biases[l - 1][i] : 0;
      const {d, c} = mk(p.x, p.y, out ? "output" : "hidden", `${out ? "output " + (i + 1) : "layer " + l + ", neuron " + (i + 1)}; bias ${fmt(bias)}`);
      d.id = `neuron-${l}-${i}`;
      if (state && state.neurons[l]) {
        drawQuantized(c, state.neurons[l][i]);
        hoverMap(d, {label: out ? `output ${i + 1}` : `layer ${l}, neuron ${i + 1}`, l, i});
      }
      if (inspection) annotate(d, out ? inspection.z[l - 1][sample][i] : inspection.a[l][sample][i], inspection.delta[l - 1][sample][i]);
    }
    if (!out) layerControls(l, L);
  }
  const lab = document.createElement("div"); lab.className = "layer-ctl out-label"; lab.id = "output-label";
  Object.assign(lab.style, {right: "0px", top: "0px"});
  const what = state ? state.outputs : "";
  lab.innerHTML = `<span>output</span><span>${what.replace(/ \(.*/, "")}</span><span>${(what.match(/\((.*)\)/) || ["", ""])[1]}</span>`;
  nodes.appendChild(lab);
}

function hoverMap(d, what) {  // TF Playground: the large view shows a unit's map while hovered
  d.onmouseenter = () => { hovered = what; drawHeatmap(); };
  d.onmouseleave = () => { hovered = null; drawHeatmap(); };
}

function editWeight(ev, l, o, j, w, from) {  // a click on a link: type its new weight
  pause();
  const ed = $("weight-editor"), box = $("net").getBoundingClientRect();
  ed.dataset.where = JSON.stringify([l, o, j]);
  $("weight-what").textContent = `w: ${from} → ${l + 1 === state.weights.length ? "output" : "layer " + (l + 1) + " neuron"} ${o + 1}`;
  $("weight-input").value = String(w);
  ed.hidden = false;
  const x = Math.min(ev.clientX - box.left, box.width - ed.offsetWidth - 4);
  Object.assign(ed.style, {left: Math.max(0, x) + "px", top: ev.clientY - box.top + 8 + "px"});
  $("weight-input").focus(); $("weight-input").select();
}

async function setWeight() {
  const ed = $("weight-editor"), [layer, row, col] = JSON.parse(ed.dataset.where), value = Number($("weight-input").value);
  if (!session || !isFinite(value) || $("weight-input").value.trim() === "") return showError("type a number for the weight");
  try {
    render(await api("/api/weight", {session, layer, row, col, value}));
    ed.hidden = true; showError("");
  } catch (e) { showError(e.message); }
}

function annotate(d, a, delta) {
  const s = document.createElement("div"); s.className = "ann";
  s.innerHTML = `a ${fmt(a)}` + (delta === null ? "" : `<br><span class="d">δ ${fmt(delta)}</span>`);
  d.appendChild(s);
}

function layerControls(l, L) {
  const box = document.createElement("div"); box.className = "layer-ctl";
  Object.assign(box.style, {left: L.xs[l] + L.node / 2 - 32 + "px", width: "64px"});
  const btns = document.createElement("div");
  const plus = document.createElement("button"); plus.className = "round"; plus.textContent = "+"; plus.title = "add a neuron";
  const minus = document.createElement("button"); minus.className = "round"; minus.textContent = "−"; minus.title = "remove a neuron";
  plus.onclick = () => { if (cfg.layers[l - 1] >= limits().neurons) return showError(`at most ${limits().neurons} neurons per layer (lift=1 in the URL raises it)`); cfg.layers[l - 1]++; changed(); };
  minus.onclick = () => { if (cfg.layers[l - 1] > 1) { cfg.layers[l - 1]--; changed(); } };
  btns.append(plus, minus);
  const sel = document.createElement("select"); sel.className = "layer-act"; sel.id = `act-${l}`;
  fillSelect(sel, OPTS.activations); sel.value = cfg.activations[l - 1];
  sel.onchange = () => { cfg.activations[l - 1] = sel.value; changed(); };
  const t = document.createElement("span"); t.textContent = `${cfg.layers[l - 1]} neurons`;
  box.append(btns, t, sel);
  $("nodes").appendChild(box);
}

function drawGradNorms() {
  const box = $("gradnorms"); box.innerHTML = "";
  if (!state) return;
  for (const [i, v] of state.grad_norms.entries()) {
    const lg = v > 0 ? Math.log10(v) : -9, w = Math.max(1, Math.min(200, ((lg + 9) / 11) * 200));
    const r = document.createElement("div"); r.className = "bar";
    r.innerHTML = `<span class="l">W${i + 1}</span><div style="width:${w}px"></div><span class="v">${v ? v.toExponential(2) : "–"}</span>`;
    box.appendChild(r);
  }
}

// ---- the backprop inspector -----------------------------------------------------------------------
async function openInspector() {
  pause();
  if (!session) return;
  try {
    if (!state || state.steps === 0) await step("batch");
    inspection = await api("/api/inspect", {session});
    sample = 0; $("inspector").hidden = false; renderInspector();
    $("inspector").scrollIntoView({block: "nearest"});
  } catch (e) { showError(e.message); }
}

function renderInspector() {
  const I = inspection;
  $("insp-info").textContent = `update #${I.step + 1} (epoch counter ${epochText(I.epoch)}), minibatch of ${I.batch}, batch loss ${fmt(I.loss)}`;
  $("sample-v").textContent = `${sample + 1} / ${I.samples} (label ${typeof I.labels[sample] === "number" && !Number.isInteger(I.labels[sample]) ? fmt(I.labels[sample]) : I.labels[sample]})`;
  $("rec-err").textContent = I.recursion_max_err.toExponential(1);
  $("grad-err").textContent = I.grad_max_rel_err.toExponential(1);
  const box = $("insp-table"); box.innerHTML = "";
  const L = I.delta.length;
  for (let l = 0; l <= L; l++) {
    const t = document.createElement("table");
    const name = l === 0 ? "inputs a(0)" : l === L ? "output z" : `layer ${l} (${I.activations[l - 1]})`;
    let html = `<caption>${name}</caption><tr><th>#</th>${l ? "<th>z</th>" : ""}<th>a</th>${l ? "<th>δ = ∂L/∂z</th>" : ""}</tr>`;
    const rows = l === L ? I.z[l - 1][sample].length : I.a[l][sample].length;
    for (let i = 0; i < rows; i++) {
      const lab = l === 0 ? I.features[i] : i + 1;
      const a = l === L ? I.z[l - 1][sample][i] : I.a[l][sample][i];
      html += `<tr><td>${lab}</td>${l ? `<td>${fmt(I.z[l - 1][sample][i])}</td>` : ""}<td>${fmt(a)}</td>${l ? `<td>${fmt(I.delta[l - 1][sample][i])}</td>` : ""}</tr>`;
    }
    t.innerHTML = html; box.appendChild(t);
  }
  drawNetwork(); drawHeatmap();
}

// ---- start ---------------------------------------------------------------------------------------
(async function main() {
  try {
    TOKEN = (await (await fetch("/api/token")).json()).token;
    OPTS = await api("/api/options");
  } catch (e) { showError("cannot reach the playground server: " + e.message); return; }
  cfg = readHash();
  setupControls();
  writeHash();
  await reset();
})();
