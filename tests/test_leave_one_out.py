"""The paper's leave-one-out protocol from the command line: `c2p protect --held-out` and `c2p evaluate --leave-one-out`,
on the tiny preset (random-weight FR models: the numbers mean nothing, the layout and the code path are real)."""
import functools
import json

import pytest

from c2p import evaluation
from c2p.cli import main
from c2p.faces import sample_photo

OBAMA, BIDEN = sample_photo("obama"), sample_photo("biden")
FOUR = ("irse50", "ir152", "facenet", "mobile_face")


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("argv, words", [
    (["--preset", "paper", "--held-out", "arcface"], "unknown face-recognition model 'arcface'"),
    (["--preset", "tiny", "--held-out", "dlib"], "unknown face-recognition model 'dlib'"),
    (["--held-out", "irse50"], "--held-out is an option of the paper preset"),   # the makeup preset, the default
])
def test_protect_refuses_a_bad_held_out_model_in_one_line(argv, words, tmp_path, capsys):
    code, _, err = run(["protect", str(OBAMA), "--out", str(tmp_path / "out"), "--prompt", "red lipstick", *argv], capsys)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("c2p protect: error:") and words in lines[0], err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the tiny preset's whole protocol: minutes of CPU (CI's second pass)
def test_protect_held_out_attacks_the_other_three(tmp_path, capsys, one_torch_thread):
    out = tmp_path / "out"
    code, stdout, err = run(["protect", str(OBAMA), "--out", str(out), "--prompt", "red lipstick", "--preset", "tiny", "--held-out", "ir152",
                        "--steps", "1", "--pti-steps", "1", "--quiet"], capsys)
    assert code in (0, 3), err
    rep = json.loads(next(out.glob("*_report.json")).read_text())
    assert rep["held_out"] == ["ir152"] and rep["surrogates"] == ["irse50", "facenet", "mobile_face"]
    face = rep["faces"][0]
    assert set(face["scores_after"]) == set(FOUR)                      # judged by all four
    assert set(face["history"][0]["scores"]) == {"irse50", "facenet", "mobile_face"}  # the search saw only the three
    assert "ir152 (held out:" in stdout, (stdout, err)  # the verdict is a result line: stdout


@pytest.mark.slow  # the tiny preset's whole protocol: minutes of CPU (CI's second pass)
def test_evaluate_leave_one_out_prints_the_paper_table(tmp_path, capsys, monkeypatch, one_torch_thread):
    # the command's own code path, with fewer inversion steps than the tiny preset's 30 (seconds, not a minute)
    monkeypatch.setattr(evaluation, "leave_one_out_protocol",
                        functools.partial(evaluation.leave_one_out_protocol, inversion_steps=2, early_stop_margin=10.0))
    runs, table = tmp_path / "loo", tmp_path / "table.json"
    code, out, err = run(["evaluate", str(runs), "--leave-one-out", "--photos", str(OBAMA), "--prompt", "red lipstick",
                          "--target", str(BIDEN), "--preset", "tiny", "--steps", "1", "--pti-steps", "1", "--json", str(table)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("Leave-one-out protection success rate (%), impersonation, FAR 0.01")
    assert lines[1].split() == ["IRSE50", "IR152", "FaceNet", "MobileFace"]
    assert lines[2].startswith("c2p tiny: held-out model (black-box)") and len(lines[2].split()) == 4 + 5
    assert lines[4].split()[-4:] == ["81.10", "48.42", "41.72", "75.26"] and lines[5].split()[-4:] == ["1"] * 4
    assert any("random weights" in l for l in lines)
    res = json.loads(table.read_text())
    assert list(res["columns"]) == list(FOUR) and res["paper"]["irse50"] == 81.10
    for m in FOUR:  # one run per held-out model, each attacking the other three
        rep = json.loads(next((runs / f"held_out_{m}").glob("*_report.json")).read_text())
        assert rep["held_out"] == [m] and sorted(rep["surrogates"]) == sorted(set(FOUR) - {m})
    assert [l for l in err.splitlines() if l.startswith("c2p evaluate: held out")] == \
        [f"c2p evaluate: held out {m}: attacking {', '.join(x for x in FOUR if x != m)} -> {runs / f'held_out_{m}'}" for m in FOUR]
    # a rerun resumes: every photo already protected, the same table
    code, out2, err2 = run(["evaluate", str(runs), "--leave-one-out", "--photos", str(OBAMA), "--prompt", "red lipstick",
                            "--target", str(BIDEN), "--preset", "tiny", "--steps", "1", "--pti-steps", "1"], capsys)
    assert code == 0 and out2.splitlines()[:6] == lines[:6] and err2.count("already protected") == 4


@pytest.mark.parametrize("argv, words", [
    (["--leave-one-out", "--prompt", "red lipstick"], "needs --photos"),
    (["--leave-one-out", "--photos", str(OBAMA), "--prompt", "red lipstick", "--preset", "makeup"], "use --preset paper"),
    (["--leave-one-out", "--photos", str(OBAMA), "--prompt", "red lipstick", "--preset", "tiny"], "needs a target photo"),
    (["--leave-one-out", "--photos", str(OBAMA), "--prompt", "red lipstick", "--models", "dlib"], "--models is not used"),
    (["--photos", str(OBAMA)], "only used with --leave-one-out"),
])
def test_evaluate_leave_one_out_refusals_are_one_line(argv, words, tmp_path, capsys):
    code, _, err = run(["evaluate", str(tmp_path / "loo"), *argv], capsys)
    lines = [l for l in err.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("c2p evaluate: error:") and words in lines[0], err
    assert not (tmp_path / "loo").exists()
