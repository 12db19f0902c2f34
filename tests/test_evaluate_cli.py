"""`c2p evaluate` end to end on a folder laid out like `c2p protect` output, built from real photos, and on bad input."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from c2p.core import shared_dir

SHARED = shared_dir()
pytestmark = pytest.mark.shared


def c2p(*args, cwd=None):
    "Run the real `c2p` command in a fresh process; return (exit status, stdout, stderr)."
    exe = Path(sys.executable).parent / "c2p"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "import sys; from c2p.cli import main; sys.exit(main())"]
    p = subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=300)
    return p.returncode, p.stdout, p.stderr


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir())}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    "Two dodging 'protections' whose outcome is known: Obama stays Obama (fails), Biden is not Obama (succeeds)."
    from c2p.evaluation import make_fake_protect_folder
    faces = SHARED / "faces"
    portrait = faces / "obama/obama_official_portrait.jpg"
    return make_fake_protect_folder(tmp_path_factory.mktemp("protected"), [
        ("fails", "dodging", portrait, faces / "obama/obama_press_room.jpg", None),
        ("works", "dodging", portrait, faces / "biden/biden_official_portrait.jpg", None),
    ])


def test_evaluate_prints_psr_table_and_writes_json(folder, tmp_path):
    before = digest(folder)
    out = tmp_path / "results.json"
    rc, stdout, stderr = c2p("evaluate", folder, "--models", "dlib", "--json", out)
    assert rc == 0, stderr
    lines = stdout.splitlines()
    header = next(l for l in lines if l.startswith("model"))
    assert header.split()[1:7] == ["FAR=0.1", "FAR=0.01", "FAR=0.001", "jpeg90@0.01", "jpeg75@0.01", "resize0.5@0.01"]
    row = next(l for l in lines if l.startswith("dlib")).split()
    assert row[1:7] == ["50.0"] * 6 and row[7] == "2", stdout  # one of two dodges succeeds, robustly
    assert any(l.startswith("quality (face, mean): PSNR") for l in lines)
    res = json.loads(out.read_text())
    scores = {r["name"]: r["scores"]["dlib"]["clean"] for r in res["pairs"]}
    assert scores["fails"] < 0.6 < scores["works"]
    assert digest(folder) == before  # evaluation never touches the photos or reports
    # an existing --json is not overwritten
    rc, _, stderr = c2p("evaluate", folder, "--models", "dlib", "--json", out, "--no-robustness")
    assert rc == 2 and stderr.count("\n") == 1 and "already exists" in stderr
    assert json.loads(out.read_text()) == res


@pytest.mark.parametrize("case", ["missing", "empty", "bad-report", "unknown-model"])
def test_bad_input_is_one_line_error(case, tmp_path, folder):
    args = {"missing": [tmp_path / "nope"], "empty": [tmp_path], "unknown-model": [folder, "--models", "arcface"]}.get(case)
    if case == "bad-report":
        (tmp_path / "x_report.json").write_text("{not json")
        args = [tmp_path]
    rc, stdout, stderr = c2p("evaluate", *args)
    assert rc == 2, (stdout, stderr)
    assert stderr.startswith("c2p evaluate: error:") and stderr.count("\n") == 1 and "Traceback" not in stderr, stderr


def test_attacked_and_held_out_rows_are_kept_apart(folder, tmp_path):
    "A model attacked in one run and held out in another: one black-box row and one white-box row, never a mixed PSR."
    import shutil
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    for name, surr, held in [("fails", ["dlib", "ir152", "facenet"], ["irse50"]), ("works", ["irse50", "ir152", "facenet"], ["dlib"])]:
        rep = json.loads((mixed / f"{name}_report.json").read_text())
        rep.update(surrogates=surr, held_out=held)
        (mixed / f"{name}_report.json").write_text(json.dumps(rep))
    rc, stdout, stderr = c2p("evaluate", mixed, "--models", "dlib", "--no-robustness")
    assert rc == 0, stderr
    rows = {l.split()[0]: l.split() for l in stdout.splitlines() if l.startswith("dlib")}
    assert rows["dlib"][1:4] == ["100.0"] * 3 and rows["dlib"][-2:] == ["1", "black-box"], stdout   # held out: Biden is not Obama
    assert rows["dlib*"][1:4] == ["0.0"] * 3 and rows["dlib*"][-2:] == ["1", "white-box"], stdout   # attacked: still Obama
    assert "held out (black-box): dlib, irse50" in stdout
