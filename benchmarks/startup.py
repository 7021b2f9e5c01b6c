"""Time to the first batch of ``ember train`` (issue 13): launch → end of training batch 1.

    python benchmarks/startup.py                       # 3 rounds: cold, warm, reference x both launchers
    python benchmarks/startup.py --rounds 5 --breakdown 2
    python benchmarks/startup.py --launchers script --modes cold,warm --rounds 1
    python benchmarks/startup.py --imports             # which packages `ember train` imports, and their cost
    python benchmarks/startup.py --json runs.json      # also write every run as JSON

Issue 13's goal: "First `ember train` on a fresh install (cold JIT cache) starts its first batch
within 10 s of launch; with a warm cache, within 2 s."

Method:
- Each run launches the real command as a user does, as a subprocess: ``ember train --epochs 1
  --out <fresh folder>`` through the installed console script (``<venv>/bin/ember``, launcher
  "script") or ``python -m ember.cli train ...`` (launcher "module"), with the data in its usual
  place (Fashion-MNIST from /usr/share/datasets/fashion-mnist, gzip). The environment is the
  caller's (so PYTHONPATH picks the checkout) plus:
    cold       NUMBA_CACHE_DIR = a new empty folder (a fresh install: nothing compiled yet)
    warm       NUMBA_CACHE_DIR = one folder filled by a first, untimed-for-the-summary run ("prime")
    reference  EMBER_KERNELS=reference (no compiled kernel is called: ember's NumPy ops)
  and ``PYTHONPYCACHEPREFIX`` = a folder of bytecode filled first as an installed machine has it
  (``fill_bytecode``: the standard library's and the dependencies' modules compiled, ember's own
  not: the first timed run, the prime, is then a user's first launch after ``pip install -e .``;
  ``--no-bytecode`` keeps the caller's setting instead),
  and ``EMBER_FIRST_BATCH_FILE`` = a file to which ember.training.loop appends
  ``time.monotonic() time.process_time()`` when batch 1 ends (nothing is written without it).
  The launcher reads ``time.monotonic()`` just before ``subprocess.Popen`` (CLOCK_MONOTONIC is
  system-wide, so the two clocks agree); seconds = marker − launch. CPU = the child's process
  time at the marker (all its threads, from exec); "helper" = the CPU of the child processes it
  had reaped by then (the prewarm helper that compiles the backward kernels on a cold cache; a
  third marker field, 0 for an ember without it).
- Run it from outside the checkout you measure when you pass PYTHONPATH: ``python -m`` puts the
  working folder first on ``sys.path``. The child is killed once the marker is there
  (``--full`` lets the epoch finish).
- Rounds alternate: in each round every mode, and within it every launcher, runs once. Every run is
  listed with the 1-minute load average read just before it; medians and ranges per mode and
  launcher follow. On a shared machine wall time depends on the load; CPU time much less so.
- ``--breakdown K``: K more runs per mode of ``ember train`` in-process (``ember.cli.main``, the
  same code path) with timers around its phases: interpreter start-up (CPU at the child's first
  line), imports (``import numba``, ``import ember``, then the modules ``ember train`` imports),
  data loading (``ember.training.loop.load_data``, both splits), model build (``build_model``),
  the schedule rehearsal, the rest of the set-up, and batch 1 split into JIT (every numba
  ``Dispatcher.compile`` call: compile or cache load, per kernel, CPU of the compiling thread)
  and the step itself. It also lists the third-party packages imported by then.
- ``--imports``: ``python -X importtime -c "import ember.cli, ember.training"`` summed per
  top-level package.

Run it with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE`` on the project's machine (as every
benchmark in benchmarks/). The results are recorded in benchmarks/RESULTS.md, "Issue 13: time to the
first batch".
"""
import sys
import time

_T0_CPU = time.process_time()     # the child's interpreter start-up, before anything of this file runs


def _stdlib():
    import argparse, json, os, shutil, signal, statistics, subprocess, tempfile  # noqa: E401
    return argparse, json, os, shutil, signal, statistics, subprocess, tempfile


ROOT = __import__("os").path.dirname(__import__("os").path.dirname(__import__("os").path.abspath(__file__)))
MODES = ("cold", "warm", "reference")
LAUNCHERS = ("script", "module")
HEAVY = ("numba", "llvmlite", "tqdm", "matplotlib", "PIL", "onnx", "onnxruntime", "mpi4py", "torch",
         "scipy", "threadpoolctl", "pandas")


def loadavg() -> str:
    """The 1-, 5- and 15-minute load averages of /proc/loadavg ('?' elsewhere)."""
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


PYCACHE = None   # main(): a folder for Python's bytecode, as an installed package has it


def _env(mode, cache, marker=None):
    """The child's environment for ``mode`` with numba's cache folder ``cache``."""
    import os
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    if PYCACHE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    env.pop("EMBER_KERNELS", None)
    if mode == "reference":
        env["EMBER_KERNELS"] = "reference"
    if marker:
        env["EMBER_FIRST_BATCH_FILE"] = marker
    return env


def command(launcher, out, extra=()):
    """argv of ``ember train --epochs 1 --out OUT`` through the console script or ``python -m``."""
    import os
    import shutil
    if launcher == "script":
        script = os.path.join(os.path.dirname(sys.executable), "ember")
        script = script if os.path.exists(script) else shutil.which("ember")
        if not script:
            raise SystemExit("no `ember` console script next to this Python or on PATH (pip install -e .)")
        head = [script]
    else:
        head = [sys.executable, "-m", "ember.cli"]
    return head + ["train", "--epochs", "1", "--out", out, *extra]


def launch(launcher, mode, cache, work, full=False, extra=()):
    """One timed run: {launcher, mode, seconds, cpu, load, rc}; seconds = launch → end of batch 1."""
    _, _, os, _, signal, _, subprocess, tempfile = _stdlib()
    run_dir = tempfile.mkdtemp(dir=work)
    marker = os.path.join(run_dir, "first-batch")
    argv = command(launcher, os.path.join(run_dir, "out"), extra)
    load = loadavg()
    with open(os.path.join(run_dir, "log"), "wb") as log:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=_env(mode, cache, marker), stdout=log, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        line = None
        while line is None and p.poll() is None:
            time.sleep(0.005)
            line = _read_marker(marker)
        line = line or _read_marker(marker)
        if line and not full and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        rc = p.wait()
    if line is None:
        with open(os.path.join(run_dir, "log"), errors="replace") as f:
            raise RuntimeError(f"{' '.join(argv)} ended (exit {rc}) before its first batch:\n{f.read()[-2000:]}")
    mono, cpu, child = line
    return {"launcher": launcher, "mode": mode, "seconds": round(mono - t0, 3), "cpu": round(cpu, 3),
            "helper_cpu": round(child, 3),
            "load": load, "rc": rc}


def _read_marker(path):
    """(monotonic, process_time, reaped children's CPU or 0) from the marker file once a whole line
    is there, else None. The third field (ember after issue 13's prewarm helper) is the CPU time of
    the helper process that compiled backward kernels meanwhile; older ember writes two fields."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    if not text.endswith("\n"):
        return None
    fields = text.split()
    return float(fields[0]), float(fields[1]), float(fields[2]) if len(fields) > 2 else 0.0


# ------------------------------------------------------------------------------ the breakdown child

class _FirstBatch(BaseException):
    """Raised in the breakdown child at the end of batch 1 to stop training there."""


def child(argv):
    """In-process ``ember train ARGV`` with timers on its phases; prints one JSON line.

    Every figure is (CPU seconds of the process, wall seconds) at an event, from which the parent
    takes differences; JIT compiles are CPU seconds of the compiling thread.
    """
    import json
    import os
    marks = {"start": (_T0_CPU, time.monotonic())}

    def mark(name):
        marks[name] = (time.process_time(), time.monotonic())

    import ember  # noqa: F401
    mark("ember")
    numba_at_import = "numba" in sys.modules
    import ember.cli  # noqa: F401
    import ember.onnx.cli  # noqa: F401   (ember.cli.main imports it for `ember export`)
    import ember.training.loop as loop
    import ember.training.safety  # noqa: F401
    import tqdm
    mark("train_imports")
    from numba.core import dispatcher as nd
    from numba.core.compiler_lock import global_compiler_lock
    lock = global_compiler_lock._lock    # its RLock (without the lock events numba times itself with)

    compiles = []
    original = nd.Dispatcher.compile
    import threading
    depth = threading.local()

    def timed_compile(self, sig):
        # Only the outermost compile of a thread is timed (numba compiles the overloads a kernel
        # uses inside it); a thread that waited for another's compile of the same kernel is a
        # lookup: neither numba's cache-hit nor its cache-miss counter moves.
        outer = not getattr(depth, "n", 0)
        depth.n = getattr(depth, "n", 0) + 1
        lock.acquire()               # numba's own (reentrant) lock, so the counters are this thread's
        hits, misses = sum(self._cache_hits.values()), sum(self._cache_misses.values())
        c0, w0 = time.thread_time(), time.monotonic()
        try:
            return original(self, sig)
        finally:
            lock.release()
            depth.n -= 1
            how = ("cache load" if sum(self._cache_hits.values()) > hits else
                   "compile" if sum(self._cache_misses.values()) > misses else None)
            if outer and how:
                name = f"{self.py_func.__module__.rsplit('.', 1)[-1]}.{self.py_func.__name__}"
                if self.targetoptions.get("parallel"):
                    name += " (parallel=True)"
                compiles.append({"kernel": name, "how": how, "cpu": time.thread_time() - c0,
                                 "wall": time.monotonic() - w0, "signature": str(sig)})

    nd.Dispatcher.compile = timed_compile

    def wrap(module, name, before, after):
        fn = getattr(module, name)

        def wrapped(*a, **k):
            marks.setdefault(before, (time.process_time(), time.monotonic()))
            result = fn(*a, **k)
            mark(after)
            return result
        setattr(module, name, wrapped)

    wrap(loop, "load_data", "data_start", "data_end")
    wrap(loop, "build_model", "model_start", "model_end")
    wrap(loop, "rehearse", "rehearse_start", "rehearse_end")
    bar = tqdm.tqdm

    def bar_created(*a, **k):
        mark("loop_start")
        return bar(*a, **k)
    tqdm.tqdm = bar_created

    def first_batch_done(path):
        mark("first_batch")
        raise _FirstBatch

    loop._first_batch_done = first_batch_done
    os.environ["EMBER_FIRST_BATCH_FILE"] = os.devnull      # turns the marker on
    try:
        ember.cli.main(argv)
    except _FirstBatch:
        pass
    modules = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
    print("BREAKDOWN " + json.dumps({"marks": marks, "compiles": compiles, "modules": modules,
                                     "numba_at_import": numba_at_import,
                                     "launch": float(os.environ["EMBER_STARTUP_LAUNCH"])}), flush=True)


def breakdown(mode, cache, work, extra=()):
    """One in-process run of ``mode``: the phases as {name: (cpu s, wall s)}, the compiles, modules."""
    _, json, os, _, _, _, subprocess, tempfile = _stdlib()
    run_dir = tempfile.mkdtemp(dir=work)
    argv = ["train", "--epochs", "1", "--out", os.path.join(run_dir, "out"), *extra]
    env = _env(mode, cache)
    load = loadavg()
    t0 = time.monotonic()
    env["EMBER_STARTUP_LAUNCH"] = repr(t0)
    p = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *argv], env=env,
                       capture_output=True, text=True)
    line = next((s for s in p.stdout.splitlines() if s.startswith("BREAKDOWN ")), None)
    if line is None:
        raise RuntimeError(f"breakdown child failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    got = json.loads(line[len("BREAKDOWN "):])
    m = got["marks"]
    jit_cpu = sum(c["cpu"] for c in got["compiles"])
    jit_wall = sum(c["wall"] for c in got["compiles"])

    def span(a, b):
        return (m[b][0] - m[a][0], m[b][1] - m[a][1])

    phases = {"interpreter start-up": (m["start"][0], m["start"][1] - got["launch"]),
              "import ember" + (" (numba included)" if got["numba_at_import"] else ""): span("start", "ember"),
              "import ember train's modules": span("ember", "train_imports"),
              "set-up before data": span("train_imports", "data_start"),
              "data loading (train + test)": span("data_start", "data_end"),
              "model build": span("model_start", "model_end"),
              "schedule rehearsal": span("rehearse_start", "rehearse_end"),
              "other set-up": tuple(a - b - c for a, b, c in zip(
                  span("data_end", "loop_start"), span("model_start", "model_end"),
                  span("rehearse_start", "rehearse_end"))),
              "batch 1: JIT (compile or cache load)": (jit_cpu, jit_wall),
              "batch 1: the step itself": tuple(a - b for a, b in zip(span("loop_start", "first_batch"),
                                                                      (jit_cpu, jit_wall)))}
    total = (m["first_batch"][0], m["first_batch"][1] - got["launch"])
    return {"mode": mode, "load": load, "phases": phases, "total": total, "compiles": got["compiles"],
            "modules": got["modules"]}


def import_profile(top=12):
    """Import seconds per top-level package (the sum of its modules' own times, ``python -X importtime``)
    of what ``ember train`` imports before its data: ember.cli, ember.training, ember.onnx.cli, tqdm."""
    _, _, os, _, _, _, subprocess, _ = _stdlib()
    code = "import ember.cli, ember.training, ember.onnx.cli, tqdm"
    p = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                       capture_output=True, text=True, env=_env("warm", ""), check=True)
    per = {}
    for line in p.stderr.splitlines():   # "import time: <self us> | <cumulative us> | <indented name>"
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].split(":")[-1].strip().isdigit():
            continue
        package = parts[2].strip().split(".")[0]
        per[package] = per.get(package, 0) + int(parts[0].split(":")[-1]) / 1e6
    rows = sorted(per.items(), key=lambda kv: -kv[1])[:top]
    return "\n".join(f"  {name:24s} {sec:6.3f} s" for name, sec in rows)


def fill_bytecode(launcher, work, extra, ember_dir):
    """Fill ``PYCACHE`` as an installed machine has its bytecode: one untimed cold ``ember train``
    (its own scratch numba cache) writes the .pyc of every module a cold run imports, the prewarm
    helper's too (the standard library's and the dependencies' modules, numba's compiler among
    them, which Python's installer and pip byte-compile at install time); then ember's own are
    removed: an editable install (``pip install -e .``, the README's) compiles them at its first
    import, so the first timed run (the "prime") is a user's first launch after installing.
    Until the twentieth session only ``import ember.cli, ember.training`` filled it, and the prime
    also compiled the modules imported later (numba's compile path, the helper's): ~0.5 s of its
    ~1 s lead over the next cold runs (benchmarks/RESULTS.md, twentieth session)."""
    import os
    import shutil
    launch(launcher, "cold", os.path.join(work, "bytecode-fill-cache"), work, False, extra)
    shutil.rmtree(os.path.join(PYCACHE, ember_dir.lstrip(os.sep)), ignore_errors=True)


def _summary(runs, statistics):
    lines = ["", "Summary (prime runs excluded): median [min – max] seconds launch → end of batch 1; CPU s"]
    goal = {"cold": 10.0, "warm": 2.0}
    for mode in MODES:
        for launcher in LAUNCHERS:
            rs = [r for r in runs if r["mode"] == mode and r["launcher"] == launcher]
            if not rs:
                continue
            s, c = [r["seconds"] for r in rs], [r["cpu"] for r in rs]
            h = [r.get("helper_cpu", 0.0) for r in rs]
            met = ""
            if mode in goal:
                n = sum(x <= goal[mode] for x in s)
                met = f"  goal ≤ {goal[mode]:g} s: {n}/{len(s)} runs within"
            lines.append(f"  {mode:9s} {launcher:6s} {statistics.median(s):6.2f} [{min(s):.2f} – {max(s):.2f}]"
                         f"  CPU {statistics.median(c):5.2f} [{min(c):.2f} – {max(c):.2f}]"
                         f" + helper {statistics.median(h):4.2f}  n={len(s)}{met}")
    return lines


def main(argv=None):
    """The command line (see the module docstring): alternating timed runs, then breakdowns."""
    argparse, json, os, shutil, _, statistics, subprocess, tempfile = _stdlib()
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds of every mode x launcher (default 3)")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: cold, warm, reference")
    p.add_argument("--launchers", default=",".join(LAUNCHERS), help="comma-separated: script, module")
    p.add_argument("--breakdown", type=int, default=1, metavar="K", help="in-process breakdown runs per mode (default 1)")
    p.add_argument("--imports", action="store_true", help="also print the import-time profile")
    p.add_argument("--full", action="store_true", help="let each `ember train` finish its epoch")
    p.add_argument("--json", default=None, help="write every run to this JSON file")
    p.add_argument("--train-args", default="", help="extra `ember train` flags, e.g. '--subset 2000'")
    p.add_argument("--no-bytecode", action="store_true", help="keep the caller's bytecode setting (by default "
                   "the runs read .pyc files from a folder filled once first, as an installed package does)")
    args = p.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    launchers = [x for x in args.launchers.split(",") if x]
    for m in modes:
        if m not in MODES:
            p.error(f"--modes: {m!r} is not one of {', '.join(MODES)}")
    for x in launchers:
        if x not in LAUNCHERS:
            p.error(f"--launchers: {x!r} is not one of {', '.join(LAUNCHERS)}")
    extra = args.train_args.split()
    import ember
    print(f"ember from {os.path.dirname(ember.__file__)}; python {sys.executable}; "
          f"{os.cpu_count()} CPUs; load {loadavg()}; {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}")
    work = tempfile.mkdtemp(prefix="ember-startup-")
    runs, breakdowns = [], []
    global PYCACHE
    try:
        if not args.no_bytecode:   # bytecode as on an installed machine: see fill_bytecode
            PYCACHE = os.path.join(work, "pycache")
            fill_bytecode(launchers[0], work, extra, os.path.dirname(os.path.abspath(ember.__file__)))
        warm = os.path.join(work, "warm-cache")
        os.makedirs(warm)
        print(f"{'#':>3} {'round':>5} {'mode':9s} {'launcher':8s} {'seconds':>8} {'CPU s':>7} {'helper':>6}"
              f"  load (1, 5, 15 min)")

        def show(i, rnd, r):
            print(f"{i:3d} {rnd:>5} {r['mode']:9s} {r['launcher']:8s} {r['seconds']:8.2f} {r['cpu']:7.2f}"
                  f" {r.get('helper_cpu', 0.0):6.2f}  {r['load']}",
                  flush=True)
        if "warm" in modes:   # the warm cache is filled by a cold run (listed, not summarised)
            r = launch(launchers[0], "cold", warm, work, args.full, extra)
            r["round"] = "prime"
            show(0, "prime", r)
            runs.append(r)
        i = 0
        for rnd in range(1, args.rounds + 1):
            for mode in modes:
                for launcher in launchers:
                    cache = os.path.join(work, f"cold-{rnd}-{launcher}") if mode == "cold" else warm
                    r = launch(launcher, mode, cache, work, args.full, extra)
                    r["round"] = rnd
                    i += 1
                    show(i, rnd, r)
                    runs.append(r)
        for line in _summary([r for r in runs if r["round"] != "prime"], statistics):
            print(line)
        primes = [r for r in runs if r["round"] == "prime"]
        if primes and not args.no_bytecode:
            print(f"  first launch after install (the prime: numba's cache and ember's own bytecode cold): "
                  f"{primes[0]['seconds']:.2f} s, CPU {primes[0]['cpu']:.2f} + helper {primes[0].get('helper_cpu', 0.0):.2f}")
        for k in range(args.breakdown):
            for mode in modes:
                cache = os.path.join(work, f"cold-breakdown-{k}") if mode == "cold" else warm
                b = breakdown(mode, cache, work, extra)
                breakdowns.append(b)
                print(f"\nBreakdown {k + 1}, {mode} (in-process `ember train`, load {b['load']}): CPU s / wall s")
                for name, (cpu, wall) in b["phases"].items():
                    print(f"  {name:38s} {cpu:6.2f} / {wall:6.2f}")
                print(f"  {'total to the end of batch 1':38s} {b['total'][0]:6.2f} / {b['total'][1]:6.2f}")
                for c in b["compiles"]:
                    print(f"    {c['how']:10s} {c['kernel']:40s} {c['cpu']:6.2f} / {c['wall']:6.2f}")
                print(f"  third-party packages imported by then: {', '.join(b['modules']) or 'none'}")
        if args.imports:
            print("\nImport time per top-level package (python -X importtime, one run):")
            print(import_profile())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "breakdowns": breakdowns}, f, indent=1)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        main()
