"""The notebooks are stored executed: up to date with their code, without errors, and every chapter with a figure.

`python tools/execute_notebooks.py [NB...]` stores them; these tests say when that is due again.
"""
import copy
import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "nbs").glob("*.ipynb"))

_spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "tools" / "execute_notebooks.py")
ex = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ex)


def _load(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _chapter(path) -> bool:
    "Chapters 01 to 11 (including in-between ones such as 085_...) teach with figures."
    m = re.match(r"(\d\d)(\d*)_", Path(path).name)
    return bool(m) and 1 <= int(m.group(1)) <= 11


def stale_reason(nb) -> str | None:
    "Why a stored notebook does not show what its current code gives (None when it does)."
    recorded = nb.get("metadata", {}).get(ex.HASH_KEY)
    if recorded is None:
        return "never executed by tools/execute_notebooks.py"
    if recorded != ex.code_hash(nb):
        return "its code cells changed since it was executed"
    return None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_outputs_are_current(path):
    reason = stale_reason(_load(path))
    assert reason is None, f"{path.name} is stale ({reason}): run python tools/execute_notebooks.py nbs/{path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_stored_errors(path):
    nb = _load(path)
    errors = [(i, o.get("ename")) for i, c in enumerate(nb["cells"]) for o in c.get("outputs", []) if o["output_type"] == "error"]
    tracebacks = [i for i, c in enumerate(nb["cells"]) for o in c.get("outputs", [])
                  if o["output_type"] == "stream" and "Traceback (most recent call last)" in "".join(o.get("text", ""))]
    assert not errors and not tracebacks, f"{path.name} stores errors in cells {errors or tracebacks}"


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if _chapter(p)], ids=lambda p: p.name)
def test_chapter_has_a_figure(path):
    assert ex.figures(_load(path)) >= 1, f"{path.name} stores no figure (image/png output)"


def test_notebooks_fit_the_budget():
    total = sum(p.stat().st_size for p in NOTEBOOKS)
    assert total < ex.BUDGET, f"the notebooks take {total / 1e6:.1f} MB, more than {ex.BUDGET / 1e6:.0f} MB"


def test_no_machine_paths_or_timings_stored():
    home = str(Path.home())
    for path in NOTEBOOKS:
        text = "".join(json.dumps(c.get("outputs", [])) for c in _load(path)["cells"])
        assert str(ROOT) not in text and f"{home}/" not in text, f"{path.name} stores a machine path"


# -- the staleness check itself: it must catch a changed notebook ----------------------------------------------------

def test_staleness_check_catches_changed_code(tmp_path):
    nb = _load(ROOT / "nbs" / "00_core.ipynb")
    nb["metadata"][ex.HASH_KEY] = ex.code_hash(nb)  # as the tool records it
    assert stale_reason(nb) is None
    changed = copy.deepcopy(nb)
    code = next(c for c in changed["cells"] if c["cell_type"] == "code" and "export" not in "".join(c["source"]))
    code["source"] = "".join(code["source"]) + "\nassert True  # a new line, not re-executed"
    (tmp_path / "changed.ipynb").write_text(json.dumps(changed))
    assert stale_reason(_load(tmp_path / "changed.ipynb")) == "its code cells changed since it was executed"
    swapped = copy.deepcopy(nb)  # same cells in another order: also stale
    idx = [i for i, c in enumerate(swapped["cells"]) if c["cell_type"] == "code"][:2]
    swapped["cells"][idx[0]], swapped["cells"][idx[1]] = swapped["cells"][idx[1]], swapped["cells"][idx[0]]
    assert stale_reason(swapped) is not None
    prose = copy.deepcopy(nb)  # prose and outputs are not code: editing them keeps the notebook current
    md = next(c for c in prose["cells"] if c["cell_type"] == "markdown")
    md["source"] = "".join(md["source"]) + "\n\nA clarified sentence."
    assert stale_reason(prose) is None
    del nb["metadata"][ex.HASH_KEY]
    assert stale_reason(nb) == "never executed by tools/execute_notebooks.py"


def test_staleness_test_fails_on_a_modified_copy(tmp_path):
    "Run the stored-outputs test itself on copies of a notebook: current passes, modified code fails."
    nb = _load(ROOT / "nbs" / "00_core.ipynb")
    nb["metadata"][ex.HASH_KEY] = ex.code_hash(nb)  # what tools/execute_notebooks.py records when it executes it
    current = tmp_path / "current" / "00_core.ipynb"
    current.parent.mkdir(); current.write_text(json.dumps(nb))
    test_stored_outputs_are_current(current)  # passes on an up-to-date notebook
    code = [c for c in nb["cells"] if c["cell_type"] == "code"][-1]
    code["source"] = "".join(code["source"]).replace("assert", "assert 1 and", 1)  # an edit, not re-executed
    changed = tmp_path / "changed" / "00_core.ipynb"
    changed.parent.mkdir(); changed.write_text(json.dumps(nb))
    with pytest.raises(AssertionError, match="is stale"):
        test_stored_outputs_are_current(changed)


def test_error_and_figure_checks_can_fail(tmp_path):
    nb = {"cells": [{"cell_type": "code", "source": "1/0", "metadata": {}, "execution_count": None,
                     "outputs": [{"output_type": "error", "ename": "ZeroDivisionError", "evalue": "", "traceback": []}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "05_x.ipynb"
    path.write_text(json.dumps(nb))
    with pytest.raises(AssertionError, match="stores errors"):
        test_no_stored_errors(path)
    assert _chapter(path) and _chapter(tmp_path / "085_cosmetics.ipynb") and not _chapter(tmp_path / "12_weights.ipynb")
    with pytest.raises(AssertionError, match="no figure"):
        test_chapter_has_a_figure(path)


def test_scrubbing_removes_timings_and_paths():
    paths = {str(ROOT): "<repo>"}
    out = ex.scrub_text(f"detection on 11 photos: 3.2 s; wrote {ROOT}/x.png and /tmp/tmpab_c1/y.json; 17.7 dB; 10 steps", paths)
    assert out == "detection on 11 photos: <time>; wrote <repo>/x.png and <tmp>/y.json; 17.7 dB; 10 steps"
