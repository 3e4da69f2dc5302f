"""Generated documentation stays in step with the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_parameters_doc_is_current():
    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_parameters_doc.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (REPO / "docs" / "parameters.md").read_text() == gen.render(), (
        "docs/parameters.md is stale: run python scripts/gen_parameters_doc.py"
    )
