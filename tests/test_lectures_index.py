"""docs/lectures.md points only at things that exist: objects import, files exist, examples run,
commands parse."""
import importlib
import os
import re
import subprocess
import sys

import pytest

from ember.cli import COMMANDS, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INDEX = os.path.join(ROOT, "docs", "lectures.md")


def rows():
    """Table rows of docs/lectures.md as dicts: deck, concept, objects, files, shown (backticked items)."""
    out = []
    for line in open(INDEX, encoding="utf-8"):
        if not re.match(r"\| 00\d \|", line):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        assert len(cells) == 5, f"row needs 5 columns: {line}"
        ticks = [re.findall(r"`([^`]+)`", c) for c in cells]
        out.append({"deck": cells[0], "concept": cells[1], "objects": ticks[2], "files": ticks[3],
                    "shown": ticks[4], "line": line.strip()})
    return out


ROWS = rows()


def resolve(dotted: str):
    """Import the longest importable module prefix of `dotted`, then getattr the rest."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_index_covers_every_deck_and_example():
    assert len(ROWS) >= 40
    assert {r["deck"] for r in ROWS} == {"000", "001", "002", "003"}
    named = {s for r in ROWS for s in r["shown"] if s.startswith("examples/")}
    scripts = {f"examples/{f}" for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py")}
    assert scripts <= named, f"examples missing from docs/lectures.md: {sorted(scripts - named)}"
    for r in ROWS:
        assert r["objects"] and r["files"] and r["shown"], f"incomplete row: {r['line']}"


@pytest.mark.parametrize("name", sorted({o for r in ROWS for o in r["objects"]}))
def test_named_object_imports(name):
    assert name.startswith("ember."), name
    assert resolve(name) is not None


@pytest.mark.parametrize("path", sorted({f for r in ROWS for f in r["files"]}))
def test_named_file_exists(path):
    assert os.path.isfile(os.path.join(ROOT, path)), path


@pytest.mark.parametrize("script", sorted({s for r in ROWS for s in r["shown"] if s.startswith("examples/")}))
def test_named_example_runs(script):
    r = subprocess.run([sys.executable, os.path.join(ROOT, script)], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0, f"{script}:\n{r.stderr}"
    assert r.stdout.strip(), f"{script} printed nothing"


@pytest.mark.parametrize("command", sorted({s for r in ROWS for s in r["shown"] if s.startswith("ember ")}))
def test_named_command_exists(command, capsys):
    words = command.split()[1:]
    sub = []
    for w in words:                                   # subcommand words end at the first option/placeholder
        if w.startswith("-") or not w.islower():
            break
        sub.append(w)
    assert sub and sub[0] in COMMANDS, command
    with pytest.raises(SystemExit) as e:
        main(sub + ["--help"])
    assert e.value.code == 0
    help_text = capsys.readouterr().out
    assert "usage: ember " + " ".join(sub) in help_text
    for opt in (w for w in words if w.startswith("--")):
        assert opt in help_text, f"{command}: option {opt} is not in `ember {' '.join(sub)} --help`"
