"""Fuzz the scenario and batch-spec parsers with files a broken editor or a hostile user
could write.

Two entry points read YAML a user wrote: :func:`pathways.scenario.load_scenario` and
:func:`pathways.batch.load_batch_spec` (a batch spec also loads its base scenario and, once
loaded, is expanded into cases by :func:`pathways.batch.expand_cases`). The property: each
call either succeeds or raises :class:`pathways.errors.InputError` whose every problem
names the file; for a structured change of the real files (``data/scenarios/sussex.yaml``,
``data/batches/example_sweep.yaml`` and ``example_montecarlo.yaml``) the message also
names the field changed (its YAML path, a parent of it, or its key). Any other exception
fails the test.

Strategies: random bytes and text; a soup of YAML tokens (tags, anchors, directives,
odd numbers); line edits of the real files (duplicated, deleted and cut lines); and
structured mutations: a value replaced by junk (None, true, huge, negative, NaN and
infinite numbers, long text, control characters, dates, lists, mappings), a key deleted,
an unknown key added, a mapping nested inside itself.

Each test runs ``PATHWAYS_FUZZ_EXAMPLES`` examples (default 10: 170 cases in about 25 s);
``derandomize`` makes every run the same. A nightly-sized run sets 500 (8,500 cases).
"""

from __future__ import annotations

import copy
import datetime as dt
import math
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pathways.batch import expand_cases, load_batch_spec
from pathways.errors import InputError
from pathways.scenario import load_scenario

REPO = Path(__file__).resolve().parents[2]
SUSSEX = REPO / "data" / "scenarios" / "sussex.yaml"
SWEEP = REPO / "data" / "batches" / "example_sweep.yaml"
MONTECARLO = REPO / "data" / "batches" / "example_montecarlo.yaml"
EXAMPLES = int(os.environ.get("PATHWAYS_FUZZ_EXAMPLES", "10"))
MAX_CASES_EXPANDED = 5_000
"""Specs that load are expanded into cases too, unless they ask for more cases than this."""

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
_COUNTER = iter(range(10**9))
KINDS = ["scenario", "batch"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A copy of the repository's layout: batches/ beside scenarios/sussex.yaml, so a
    spec's ``base: ../scenarios/sussex.yaml`` finds the real demo scenario."""
    root = tmp_path_factory.mktemp("fuzz-parsers")
    (root / "scenarios").mkdir()
    (root / "batches").mkdir()
    shutil.copy(SUSSEX, root / "scenarios" / "sussex.yaml")
    return root


def _load(kind: str, path: Path) -> InputError | None:
    """Load ``path``; return the InputError, or None when it loads. Anything else raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "scenario":
                load_scenario(path)
            else:
                spec = load_batch_spec(path)
                if spec.n_samples * max(1, len(spec.icbs or [])) <= MAX_CASES_EXPANDED:
                    expand_cases(spec)
    except InputError as err:
        assert err.problems
        assert all(p.file == str(path) for p in err.problems), err.problems
        assert str(path) in str(err)
        assert "Traceback" not in str(err)
        return err
    return None


def _write(folder: Path, kind: str, data: bytes) -> Path:
    sub = "scenarios" if kind == "scenario" else "batches"
    path = folder / sub / f"fuzz{next(_COUNTER)}.yaml"
    path.write_bytes(data)
    return path


def _try(folder: Path, kind: str, data: bytes) -> InputError | None:
    path = _write(folder, kind, data)
    try:
        return _load(kind, path)
    finally:
        path.unlink()


# --------------------------------------------------------------------------- raw files


@FUZZ
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.binary(max_size=2000))
def test_fuzz_random_bytes(folder, kind, data):
    _try(folder, kind, data)


@FUZZ
@pytest.mark.parametrize("kind", KINDS)
@given(text=st.text(max_size=400))
def test_fuzz_random_text(folder, kind, text):
    _try(folder, kind, text.encode("utf-8", "surrogatepass"))


_TOKENS = [
    "name", "footprint", "icb", "E54000053", "sites", "site_id", "capacity", "grid", "base",
    "run", "monte_carlo", "parameters", "dist", "demand.growth_factor", ":", ": ", "- ", "-",
    "\n", "\n  ", "\n    ", "  ", "\t", "{", "}", "[", "]", ",", "? ", "&a ", "*a", "&b ", "*b",
    "<<: ", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!timestamp ", "!!binary ",
    "!!set ", "!!omap ", "!!pairs ", "!!seq ", "!!map ", "!!merge ", "!!value ",
    "!!python/object/apply:os.system ", "!local ", "!<tag:x,2000:y> ", "%YAML 1.1\n",
    "%YAML 2.0\n", "%TAG !e! tag:x,2000:\n", "!e!z ", "---\n", "...\n", "|\n", ">-\n", "'", '"',
    "\\x00", "\\u2028", "\\", "# c", "1", "-1", "0", "1e400", "9.0e7", "6.0e+7", ".nan", ".inf",
    "-.inf", "0x1F", "0o17", "0b11", "1_000", "1:30", "2020-13-45", "2020-02-30",
    "2020-01-01T25:00:00", "2020-01-01 12:00:00 +99:00", "~", "null", "true", "yes", "No", "é",
    "\x00", "\x07", "\x7f", "\x85", "\ufeff", "\u2028", "\U0001f642", "9" * 5000, "x" * 300,
    "../scenarios/sussex.yaml", "/dev/zero", "/etc/passwd", "optimise", "frontier",
    "triangular", "lognormal", "uniform", "normal", "low", "high", "mode", "sigma", "median",
    "unit", "samples", "seed", "budgets",
]  # fmt: skip
_HEADERS = {
    "scenario": ["", "name: x\nfootprint: {icb: E54000053}\n", "name: x\nfootprint:\n  icb: "],
    "batch": ["", "name: x\nbase: ../scenarios/sussex.yaml\n", "name: x\nicbs: [E54000053]\n"],
}


@FUZZ
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_fuzz_yaml_token_soup(folder, kind, data):
    head = data.draw(st.sampled_from(_HEADERS[kind]))
    body = "".join(data.draw(st.lists(st.sampled_from(_TOKENS), max_size=40)))
    _try(folder, kind, (head + body).encode("utf-8", "surrogatepass"))


_PIECES = [":", "- ", "  ", "\t", "&a ", "*a", "!!bool ", "!!timestamp ", "{", "]", "'", '"',
           "\x00", "1e400", ".nan", "-", "#", "<<: *a", "\ufeff", "9" * 5000]  # fmt: skip


@FUZZ
@pytest.mark.parametrize("kind", KINDS)
@given(
    edits=st.lists(
        st.tuples(
            st.sampled_from(["duplicate", "delete", "cut", "insert", "indent", "dedent"]),
            st.integers(0, 10**6),
            st.sampled_from(_PIECES),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_fuzz_line_edits_of_the_real_files(folder, kind, edits):
    lines = (SUSSEX if kind == "scenario" else MONTECARLO).read_text().splitlines(keepends=True)
    for op, pos, piece in edits:
        i = pos % len(lines)
        if op == "duplicate":  # a key given twice, or a list item repeated
            lines.insert(i, lines[i])
        elif op == "delete" and len(lines) > 1:
            del lines[i]
        elif op == "cut":  # a file truncated in the middle of a line
            lines = lines[:i] + [lines[i][: pos % (len(lines[i]) + 1)]]
        elif op == "insert":
            at = pos % (len(lines[i]) + 1)
            lines[i] = lines[i][:at] + piece + lines[i][at:]
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip(" ")
    _try(folder, kind, "".join(lines).encode("utf-8", "surrogatepass"))


# --------------------------------------------------------------------------- structured

_CONTROL = st.text(
    alphabet=st.sampled_from([chr(c) for c in range(32)] + ["\x7f"]), min_size=1, max_size=3
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 10**400, -(10**400), 10**4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, -0.0]),
    st.text(max_size=20),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=4), _CONTROL, st.text(max_size=4)),
    st.sampled_from(["", " ", "x" * 101, "x" * 300, "x" * 501, "x" * 20_001, "é" * 100_000,
                     "yes", "no", "off", "~", "null", ".nan", "1e400", "9.0e7", "0x1F", "12",
                     "1_000", "2024-02-30", "E54000053", "Kent and Medway", "all", "frontier",
                     "optimise", "evaluate", "custom", "crisis_now", "triangular", "lognormal",
                     "../scenarios/sussex.yaml", "../../etc/passwd", "/dev/zero", "/etc/shadow",
                     "/", ".", "a\x00b", "=SUM(1,1)", "<script>alert(1)</script>"]),
    st.dates(),
    st.datetimes(timezones=st.just(dt.UTC)),
)  # fmt: skip
VALUES = st.one_of(
    _SCALARS,
    st.lists(_SCALARS, max_size=5),
    st.dictionaries(st.text(max_size=8), _SCALARS, max_size=4),
    st.lists(st.dictionaries(st.text(max_size=8), _SCALARS, max_size=3), max_size=3),
)


def _dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100).encode("utf-8")


KEYS = st.one_of(
    st.text(max_size=12),
    st.integers(-5, 10**6),
    st.none(),
    st.booleans(),
    st.sampled_from(["Name", "name ", "site_id", "sites[0]", "a.b", "<<", "__class__",
                     "demand.growth_factor", "x" * 300, "a\x00b", "unit", "dist"]),
).filter(lambda k: yaml.safe_load(_dump({k: 0})) == {k: 0})  # fmt: skip
"""Keys PyYAML writes and reads back unchanged (with ``allow_unicode`` it writes a NEL,
``\\x85``, in single quotes, which it then reads as a space)."""
INTERNAL_KEYS = {"base_dir", "spec_dir"}
"""Set by the loaders themselves (the file's folder), so a value the file gives is replaced."""

DOCUMENTS = {"sussex": SUSSEX, "example_sweep": SWEEP, "example_montecarlo": MONTECARLO}


def _document(name: str) -> Any:
    return yaml.safe_load(DOCUMENTS[name].read_text())


def _kind(name: str) -> str:
    return "scenario" if name == "sussex" else "batch"


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _at(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def _render(path: tuple) -> str:
    """A YAML path as the loaders write it: ``sites[3].capacity.inpatient_beds``."""
    out = ""
    for part in path:
        out += (
            f"[{part}]"
            if isinstance(part, int) and not isinstance(part, bool)
            else (("." if out else "") + str(part))
        )
    return out


def _names(err: InputError, path: tuple, key: Any = None) -> bool:
    """Whether the error names the changed field: its path, a part of it or inside it as
    a problem's field, or the key (or the key of its list) in a message. ``key``: a key
    added or deleted, which may be a number, true/false or null."""
    target = _render(path)
    for p in err.problems:
        f = p.field or ""
        if f and (
            f == target
            or f.startswith((target + ".", target + "["))
            or target.startswith((f + ".", f + "["))
        ):
            return True
    keys = [str(k) for k in path if isinstance(k, str)]
    if key is not None or (path and path[-1] is None):
        keys.append(str(key))
    return bool(keys) and keys[-1] in str(err)


def _check_named(
    folder: Path, name: str, doc: Any, path: tuple, *, must_fail: bool = False, key: bool = False
) -> None:
    err = _try(folder, _kind(name), _dump(doc))
    if err is None:
        assert not must_fail, f"{_render(path)} was accepted"
        return
    assert _names(err, path, path[-1] if key else None), (_render(path), str(err)[:2000])


@FUZZ
@pytest.mark.parametrize("name", list(DOCUMENTS))
@given(data=st.data())
def test_fuzz_a_value_replaced(folder, name, data):
    """A leaf (or a whole list or mapping) of the real file replaced by junk."""
    doc = _document(name)
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p]))
    value = data.draw(VALUES)
    parent = _at(doc, path[:-1])
    parent[path[-1]] = value
    _check_named(folder, name, doc, path)


@FUZZ
@pytest.mark.parametrize("name", list(DOCUMENTS))
@given(data=st.data())
def test_fuzz_a_key_deleted_added_or_nested(folder, name, data):
    doc = _document(name)
    mappings = [p for p in _paths(doc) if isinstance(_at(doc, p), dict)]
    path = data.draw(st.sampled_from(mappings))
    mapping = _at(doc, path)
    op = data.draw(st.sampled_from(["delete", "add", "nest"]))
    if op == "delete" and mapping:
        key = data.draw(st.sampled_from(list(mapping)))
        del mapping[key]
        _check_named(folder, name, doc, (*path, key), key=True)
    elif op == "add" or not mapping:
        key = data.draw(KEYS.filter(lambda k: k not in mapping))
        mapping[key] = data.draw(VALUES)
        if path == () and key in INTERNAL_KEYS:
            _try(folder, _kind(name), _dump(doc))
            return
        # no unknown key may pass unnoticed
        _check_named(folder, name, doc, (*path, key), must_fail=True, key=True)
    else:  # the mapping nested inside itself under one of its own keys
        key = data.draw(st.sampled_from(list(mapping)))
        mapping[key] = copy.deepcopy(mapping)
        _check_named(folder, name, doc, (*path, key))


@FUZZ
@pytest.mark.parametrize("name", list(DOCUMENTS))
@given(data=st.data())
def test_fuzz_several_changes_at_once(folder, name, data):
    """One to five changes of any kind: only the kind of error and the file are checked."""
    doc = _document(name)
    for _ in range(data.draw(st.integers(1, 5))):
        paths = _paths(doc)
        path = data.draw(st.sampled_from(paths))
        node = _at(doc, path)
        op = data.draw(st.sampled_from(["replace", "delete", "add", "nest", "wrap"]))
        if not path:
            if op in ("delete", "add") and isinstance(doc, dict):
                doc[data.draw(KEYS)] = data.draw(VALUES)
            continue
        parent = _at(doc, path[:-1])
        if op == "replace":
            parent[path[-1]] = data.draw(VALUES)
        elif op == "delete":
            del parent[path[-1]]
        elif op == "add" and isinstance(node, dict):
            node[data.draw(KEYS)] = data.draw(VALUES)
        elif op == "nest":
            parent[path[-1]] = copy.deepcopy(parent)
        elif op == "wrap":
            parent[path[-1]] = [node] if data.draw(st.booleans()) else {"x": node}
    _try(folder, _kind(name), _dump(doc))


# --------------------------------------------------------------------------- regressions
# Each raised something other than InputError before it was fixed (found by the fuzz
# above or while writing it).


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("name: !!bool maybe\n", "'maybe' is not a valid bool"),  # was KeyError
        ("name: !!timestamp x\n", "'x' is not a valid timestamp"),  # was AttributeError
        ("a: 1\nb: !<tag:yaml.org,2002:timestamp> 2020\n", "not a valid timestamp"),
        ("a: 1\nb: !!float\n", "'' is not a valid float"),  # was IndexError
        ("a: 1\nb: !!int ''\n", "'' is not a valid int"),  # was IndexError
    ],
)
def test_a_tag_the_value_does_not_fit_is_an_input_error_at_its_line(folder, text, words):
    for kind in KINDS:
        err = _try(folder, kind, text.encode())
        assert err is not None and words in str(err)
        assert err.problems[0].row == text.count("\n")


def test_a_tagged_or_impossible_date_names_its_line(folder):
    err = _try(folder, "scenario", b"name: x\nfootprint: {icb: E54000053}\nnote: 2020-13-45\n")
    assert err is not None and "month must be" in str(err) and err.problems[0].row == 3


@pytest.mark.parametrize("where", ["base", "plan"])
def test_a_file_name_too_long_for_the_file_system_is_an_input_error(folder, where):
    # was OSError: [Errno 36] File name too long, from Path.exists()
    text = "name: x\nbase: ../scenarios/sussex.yaml\n"
    text = (
        text.replace("../scenarios/sussex.yaml", "x" * 300)
        if where == "base"
        else (text + "plan: " + "x" * 300 + "\n")
    )
    err = _try(folder, "batch", text.encode())
    assert err is not None and err.problems[0].field == where
    assert "name too long" in str(err)
    with pytest.raises(InputError, match="name too long"):
        load_scenario("x" * 300)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_without_reading_it(folder, device):
    # /dev/zero was read until memory ran out
    if not Path(device).exists():
        pytest.skip(f"{device} is not on this system")
    with pytest.raises(InputError, match="not a regular file"):
        load_scenario(device)
    err = _try(folder, "batch", f"name: x\nbase: {device}\n".encode())
    assert err is not None and err.problems[0].field == "base"
    assert "not a regular file" in str(err)


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    pipe = tmp_path / "spec.yaml"
    os.mkfifo(pipe)
    with pytest.raises(InputError, match="not a regular file"):
        load_batch_spec(pipe)


def _spec_with(folder: Path, parameter: str) -> InputError | None:
    text = (
        "name: x\nbase: ../scenarios/sussex.yaml\n"
        "monte_carlo: {samples: 3, seed: 1, parameters: {" + parameter + "}}\n"
    )
    return _try(folder, "batch", text.encode())


@pytest.mark.parametrize("dist", ["uniform", "triangular"])
def test_a_range_too_wide_to_sample_is_refused_at_load(folder, dist):
    # uniform was OverflowError ("high - low range exceeds valid bounds") in expand_cases
    mode = ", mode: 0" if dist == "triangular" else ""
    err = _spec_with(
        folder,
        f"budget.capital_gbp: {{dist: {dist}, low: -1.0e+308{mode}, high: 1.0e+308, unit: GBP}}",
    )
    assert err is not None and "too wide to sample from" in str(err)
    assert err.problems[0].field == "monte_carlo.parameters.budget.capital_gbp"


def test_a_huge_lognormal_sigma_gives_failing_cases_not_an_overflow(folder):
    # was OverflowError (math range error) in expand_cases
    path = _write(
        folder,
        "batch",
        b"name: x\nbase: ../scenarios/sussex.yaml\nmonte_carlo: {samples: 4, seed: 1, "
        b"parameters: {demand.growth_factor: {dist: lognormal, median: 1, sigma: 1.0e+300, "
        b"unit: x}}}\n",
    )
    cases = expand_cases(load_batch_spec(path))
    assert len(cases) == 4
    assert any(math.isinf(c.changes["demand.growth_factor"]) for c in cases)
