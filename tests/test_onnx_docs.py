"""docs/onnx.md's op coverage table must list exactly the ops ember.onnx exports and loads."""
from pathlib import Path

from ember.onnx import EXPORTED_OPS, IMPORTED_OPS

DOC = Path(__file__).resolve().parent.parent / "docs" / "onnx.md"


def table_rows():
    lines = DOC.read_text().split("## Op coverage", 1)[1].splitlines()
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln.startswith("| `")]
    return {r[0].strip("`"): r[1:] for r in rows}


def test_table_lists_every_exported_and_imported_op():
    rows = table_rows()
    assert set(rows) == set(EXPORTED_OPS) | set(IMPORTED_OPS), (
        f"missing from docs/onnx.md: {sorted((set(EXPORTED_OPS) | set(IMPORTED_OPS)) - set(rows))}; "
        f"not supported but listed: {sorted(set(rows) - set(EXPORTED_OPS) - set(IMPORTED_OPS))}")
    for op, (exported, imported) in rows.items():
        assert exported.startswith("—") == (op not in EXPORTED_OPS), f"{op}: export column is wrong"
        assert (imported == "—") == (op not in IMPORTED_OPS), f"{op}: load column is wrong"
