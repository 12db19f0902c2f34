"""`c2p protect` from the command line: outputs, reports, reruns, refusals and one-line errors on real photos."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from c2p.cli import main
from c2p.faces import sample_photo

KIT = sample_photo("biden")        # 1200x1200 JPEG, one face: installed with c2p, so these tests run on a fresh clone
OBAMA = sample_photo("obama")
FAST = ["--steps", "2", "--pti-steps", "2", "--quiet"]  # the command's plumbing, not the protection's strength


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run(argv, capsys):
    code = main(["protect", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, out + err  # result lines are on stdout, refusals and notes on stderr


def test_bad_input_gives_one_line_and_no_output(tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        ([str(KIT), "--out", str(out), "--prompt", "red lipstick", "--mode", "impersonation"], "needs --target"),
        ([str(KIT), "--out", str(out), "--prompt", "red lipstick", "--layers", "17-8"], "cannot read layers"),
        ([str(KIT), "--out", str(out), "--prompt", "red lipstick", "--steps", "0"], "--steps must be at least 1"),
        ([str(KIT), "--out", str(out), "--prompt", "   "], "prompt is empty"),
        ([str(KIT), "--out", str(out), "--prompt", "red lipstick", "--mode", "impersonation", "--target", str(tmp_path / "nope.jpg")],
         "does not exist"),
        ([str(KIT), "--out", str(out), "--prompt", "red lipstick", "--device", "cuda:banana"], "device"),
    ]
    for argv, words in cases:
        code, _, err = run(argv, capsys)
        assert code == 2, (argv, err)
        lines = [l for l in err.splitlines() if l.strip()]
        assert len(lines) == 1 and words in lines[0] and lines[0].startswith("c2p protect: error:"), (argv, err)
    assert not out.exists() or not any(out.iterdir())


def test_missing_and_unreadable_photos_fail_with_nonzero_exit(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"; bad.write_text("not a photo")
    code, _, err = run([str(tmp_path / "missing.jpg"), str(bad), "--out", str(tmp_path / "out"), "--prompt", "red lipstick", *FAST], capsys)
    assert code == 1
    assert "missing.jpg: no such file" in err and "notes.jpg" in err and "2 failed" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_protects_a_folder_skips_faceless_reruns_and_never_overwrites(tmp_path, capsys):
    src = tmp_path / "in"; src.mkdir()
    shutil.copy(KIT, src / "kit.jpg")
    Image.new("RGB", (320, 240), (120, 160, 200)).save(src / "sky.png")  # no face
    out = tmp_path / "out"
    code, _, err = run([str(src), "--out", str(out), "--prompt", "red lipstick", *FAST], capsys)
    assert code == 1, err  # a photo without a face is a photo not protected
    assert "sky.png: skipped, no face" in err and "kit.jpg -> " in err and "2 photos:" in err and "1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["kit_protected.jpg", "kit_report.json"]  # nothing partial
    prot = Image.open(out / "kit_protected.jpg")
    assert prot.format == "JPEG" and prot.size == Image.open(KIT).size
    rep = json.loads((out / "kit_report.json").read_text())
    for key in ("input", "output", "mode", "target", "prompt", "preset", "faces", "settings", "timings"):
        assert key in rep, key
    assert rep["mode"] == "dodging" and rep["preset"] == "makeup" and rep["prompt"] == "red lipstick" and len(rep["faces"]) == 1
    face = rep["faces"][0]
    assert set(face["scores_before"]) == set(face["scores_after"]) == set(face["thresholds"]) == {"dlib"}
    assert face["thresholds"]["dlib"] == 0.6 and len(face["box"]) == 4 and face["steps"] >= 1
    assert rep["settings"]["search"]["steps"] == 2 and rep["settings"]["pti_steps"] == 2
    before = (out / "kit_protected.jpg").read_bytes()

    # rerun: the finished photo is skipped, nothing rewritten
    code, _, err = run([str(src), "--out", str(out), "--prompt", "red lipstick", *FAST], capsys)
    assert code == 1 and "kit.jpg: already protected" in err and (out / "kit_protected.jpg").read_bytes() == before

    # an output without its report is someone else's file: refused, untouched, exit 1; --overwrite replaces it
    (out / "kit_report.json").unlink()
    code, _, err = run([str(src / "kit.jpg"), "--out", str(out), "--prompt", "red lipstick", *FAST], capsys)
    assert code == 1 and "already exists" in err and (out / "kit_protected.jpg").read_bytes() == before
    code, _, err = run([str(src / "kit.jpg"), "--out", str(out), "--prompt", "blue eyeshadow", "--overwrite", *FAST], capsys)
    assert code in (0, 3) and json.loads((out / "kit_report.json").read_text())["prompt"] == "blue eyeshadow"


def test_never_overwrites_an_input(tmp_path, capsys):
    shutil.copy(KIT, tmp_path / "a.jpg")
    shutil.copy(KIT, tmp_path / "a_protected.jpg")  # a photo that happens to carry the output's name
    before = (tmp_path / "a_protected.jpg").read_bytes()
    code, _, err = run([str(tmp_path / "a.jpg"), str(tmp_path / "a_protected.jpg"), "--out", str(tmp_path), "--prompt", "red lipstick",
                        *FAST], capsys)
    assert code == 1 and "would overwrite an input" in err
    assert (tmp_path / "a_protected.jpg").read_bytes() == before


def test_impersonation_and_layers_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run([str(KIT), "--out", str(out), "--prompt", "red lipstick", "--mode", "impersonation",
                        "--target", str(OBAMA), "--layers", "9-13", "--lambda-adv", "1.5",
                        "--seed", "3", *FAST], capsys)
    assert code in (0, 3), err  # written; 3 when 2 steps did not get past the threshold
    rep = json.loads((out / "biden_official_portrait_report.json").read_text())
    assert rep["mode"] == "impersonation" and rep["target"].endswith("obama_official_portrait.jpg")
    assert rep["settings"]["search"]["layers"] == list(range(9, 14)) and rep["settings"]["search"]["lambda_adv"] == 1.5
    assert rep["settings"]["seed"] == 3 and rep["faces"][0]["reference"] == "target"


def test_console_script_reports_errors_without_traceback(tmp_path):
    exe = Path(sys.executable).parent / "c2p"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from c2p.cli import run; run()"]
    r = subprocess.run(cmd + ["protect", str(tmp_path / "none.jpg"), "--out", str(tmp_path), "--prompt", "red lipstick", "--mode",
                              "impersonation"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0, r.stderr
    r = subprocess.run(cmd + ["protect", "--prompt", "red lipstick"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr  # argparse usage error


@pytest.mark.slow  # tens of seconds: CI's second pass (keeps the test command under 15 minutes)
def test_batch_on_the_tiny_preset_searches_two_photos_faces_through_their_own_generators(tmp_path, capsys):
    "--preset tiny --batch 2: each face tuned on its own, the two searched together; the verdicts of one by one."
    d = tmp_path / "in"; d.mkdir()
    shutil.copy(KIT, d / "a_biden.jpg"); shutil.copy(OBAMA, d / "b_obama.jpg")
    argv = ["--prompt", "red lipstick", "--preset", "tiny", "--steps", "4", "--pti-steps", "2", "--quiet"]
    outs = {}
    for b in ("1", "2"):
        extra = ["--precision", "tf32"] if b == "2" else []  # no TF32 on a CPU: the same arithmetic, recorded in the report
        code, out, err = run([str(d), "--out", str(tmp_path / b), *argv, "--batch", b, *extra], capsys)
        assert code in (0, 3), err
        outs[b] = sorted(l.replace(str(tmp_path / b), "OUT").split(" (attacked")[0] for l in out.splitlines() if " -> " in l)
    assert outs["1"] == outs["2"] and len(outs["2"]) == 2, outs
    for name in ("a_biden", "b_obama"):
        r1, r2 = (json.loads((tmp_path / b / f"{name}_report.json").read_text())["faces"][0] for b in ("1", "2"))
        assert (r1["search_batch"], r2["search_batch"]) == (1, 2) and r1["protected"] == r2["protected"]
        assert abs(r1["scores_after"]["dlib"] - r2["scores_after"]["dlib"]) < 0.01
        s1, s2 = (json.loads((tmp_path / b / f"{name}_report.json").read_text())["settings"]["precision"] for b in ("1", "2"))
        assert (s1, s2) == ("fp32", "tf32")


@pytest.mark.slow  # chapter 9 tests a batch against one by one too; this one the command and a bad photo
def test_batch_searches_photos_together_with_the_same_results_and_a_bad_photo_fails_alone(tmp_path, capsys):
    "--batch 3: the faces of the next photos are searched with the current one's; verdicts as one by one, pixels within noise."
    d = tmp_path / "in"; d.mkdir()
    shutil.copy(KIT, d / "a_biden.jpg"); shutil.copy(OBAMA, d / "b_obama.jpg")
    (d / "c_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    shutil.copy(OBAMA, d / "d_obama_again.jpg")
    argv = ["--prompt", "red lipstick", "--steps", "3", "--quiet"]
    code1, out1, _ = run([str(d), "--out", str(tmp_path / "one"), *argv], capsys)
    code3, out3, err3 = run([str(d), "--out", str(tmp_path / "three"), *argv, "--batch", "3"], capsys)
    assert code1 == code3 == 1, err3  # the broken photo fails, in both
    lines = lambda out, where: sorted(l.replace(str(tmp_path / where), "OUT") for l in out.splitlines() if l.startswith("c2p protect: ") and " -> " in l)
    strip = lambda ls: [l.split(" (attacked")[0] for l in ls]  # distances may differ in the last digits
    assert strip(lines(out1, "one")) == strip(lines(out3, "three")) and len(lines(out3, "three")) == 3, (out1, out3)
    assert "c_broken.jpg" in out3 and "1 failed" in out3
    for name in ("a_biden", "b_obama", "d_obama_again"):
        r1, r3 = (json.loads((tmp_path / w / f"{name}_report.json").read_text())["faces"][0] for w in ("one", "three"))
        assert abs(r1["scores_after"]["dlib"] - r3["scores_after"]["dlib"]) < 2e-3 and r1["protected"] == r3["protected"]
        assert r1["search_batch"] == 1 and r3["search_batch"] == 3  # searched alone / with the other two photos' faces
        a, b = (np.asarray(Image.open(tmp_path / w / f"{name}_protected.jpg").convert("RGB"), np.int16) for w in ("one", "three"))
        assert np.abs(a - b).max() <= 8  # JPEG re-encoding of pixels that moved by float noise
    assert sorted(p.name for p in (tmp_path / "three").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
