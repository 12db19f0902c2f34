"""`c2p protect --engine ray` on a local Ray cluster of 2 CPUs, with the photos that ship with c2p (no ../shared).

The Ray engine must give what the local engine gives (the same bytes and verdicts: both run torch on one thread per
photo, with the job's seed), resume an interrupted job by writing only the photos still missing, and let a bad photo
fail alone with its line. Without Ray installed, `--engine ray` is one line saying how to install it. The tests that
need Ray skip when it is not installed (`pip install 'c2p[ray]'`; CI installs it).
"""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from c2p.cli import main
from c2p.faces import sample_photo

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "red lipstick"
STEPS = 2  # the engines' plumbing and equivalence, not the protection's strength
PROTECTED = ["biden", "obama", "obama_mirror"]


def _cli(argv, capsys):
    code = main(["protect", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_without_ray_the_ray_engine_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    code, _, err = _cli([str(sample_photo("obama")), "--out", str(tmp_path / "out"), "--prompt", PROMPT, "--engine", "ray"], capsys)
    assert code == 2 and err.strip().splitlines() == [
        "c2p protect: error: --engine ray needs Ray, which is not installed: pip install 'c2p[ray]' (or pip install 'ray[data]')"]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("extra, words", [(["--ray-address", "auto"], "--ray-address is an option of --engine ray"),
                                          (["--actors", "2"], "--actors is an option of --engine ray")])
def test_ray_options_need_the_ray_engine(tmp_path, capsys, extra, words):
    code, _, err = _cli([str(sample_photo("obama")), "--out", str(tmp_path / "out"), "--prompt", PROMPT, *extra], capsys)
    assert code == 2 and err.strip() == f"c2p protect: error: {words}"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    "Three photos with a face (the shipped portraits and one mirrored), one without a face and one cut short."
    d = tmp_path_factory.mktemp("photos")
    for who in ("obama", "biden"):
        (d / f"{who}.jpg").write_bytes(sample_photo(who).read_bytes())
    ImageOps.mirror(Image.open(sample_photo("obama"))).save(d / "obama_mirror.jpg", quality=92)
    Image.new("RGB", (300, 200), (90, 140, 200)).save(d / "sky.png")
    (d / "broken.jpg").write_bytes(sample_photo("biden").read_bytes()[:3000])  # a download cut short
    return d


@pytest.fixture(scope="module")
def cluster():
    "A local Ray cluster of 2 CPUs for the module (protect_dataset joins it)."
    pytest.importorskip("ray", reason="the Ray engine needs ray: pip install 'c2p[ray]'")
    from c2p.engines import ray_cluster
    with ray_cluster(num_cpus=2) as ray:
        yield ray


def _without_timings(x):
    if isinstance(x, dict): return {k: _without_timings(v) for k, v in x.items() if k not in ("timings", "seconds", "output")}
    if isinstance(x, list): return [_without_timings(v) for v in x]
    return x


@pytest.mark.slow  # a minute each: CI's second pass
def test_ray_gives_the_local_engines_bytes_verdicts_and_lines(cluster, folder, tmp_path, one_torch_thread):
    from c2p.engines import protect_dataset
    from c2p.pipeline import protect_files
    lines, tables = {"ray": [], "local": []}, []
    st_ray = protect_dataset([folder], tmp_path / "ray", PROMPT, steps=STEPS, device="cpu", progress=False,
                             log=lines["ray"].append, summary=tables.append)
    st_loc = protect_files([folder], tmp_path / "local", PROMPT, steps=STEPS, device="cpu", progress=False,
                           log=lines["local"].append)
    expected = {"biden.jpg": "done", "broken.jpg": "failed", "obama.jpg": "done", "obama_mirror.jpg": "done", "sky.png": "no_face"}
    for st in (st_ray, st_loc):
        assert {Path(s["input"]).name: s["status"] for s in st} == expected, st
    # the bad photo and the photo without a face fail alone, each with its one line, in both engines
    for engine in ("ray", "local"):
        said = [l.replace(str(tmp_path / engine), "OUT") for l in lines[engine] if "ray:" not in l]
        assert len(said) == 6 and sum("error: " in l and "broken.jpg" in l for l in said) == 1
        assert sum(l.startswith("c2p protect: look: ") for l in said) == 1  # the look, said before any work
        assert sum("sky.png: skipped, no face found" in l for l in said) == 1
        lines[engine] = sorted(said)
    assert lines["ray"] == lines["local"]  # the same result line for every photo
    for who in PROTECTED:
        img = f"{who}_protected.jpg"
        assert (tmp_path / "ray" / img).read_bytes() == (tmp_path / "local" / img).read_bytes(), f"{img} differs"
        reps = [json.loads((tmp_path / e / f"{who}_report.json").read_text()) for e in ("ray", "local")]
        assert _without_timings(reps[0]) == _without_timings(reps[1]), who
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(p.name for p in (tmp_path / "local").iterdir())
    head, row = tables[0].splitlines()
    figures = dict(zip(["photos", "done", "skipped", "failed", "faces", "protected", "not_protected", "faces_per_minute"], row.split()))
    assert head.split()[:5] == ["photos", "done", "skipped", "failed", "faces"] and head.endswith("faces/min")
    assert (figures["photos"], figures["done"], figures["skipped"], figures["failed"], figures["faces"]) == ("5", "3", "0", "2", "3")
    assert float(figures["faces_per_minute"]) > 0


@pytest.mark.slow  # a minute each: CI's second pass
def test_ray_batch_searches_an_actors_photos_together_with_the_one_by_one_verdicts(cluster, folder, tmp_path, one_torch_thread):
    "--batch 3: an actor takes 3 photos at a time and searches their faces together; verdicts as one by one, distances within float noise."
    import numpy as np
    from c2p.engines import protect_dataset
    from c2p.pipeline import protect_files
    lines = []
    st_b = protect_dataset([folder], tmp_path / "ray3", PROMPT, steps=STEPS, device="cpu", progress=False, batch=3, actors=1,
                           log=lines.append)
    st_1 = protect_files([folder], tmp_path / "one", PROMPT, steps=STEPS, device="cpu", progress=False, log=lambda m: None)
    assert [s["status"] for s in st_b] == [s["status"] for s in st_1] == ["done", "failed", "done", "done", "no_face"], st_b
    assert any("(3 photos a call, faces searched together)" in l for l in lines), lines
    batches = []
    for who in PROTECTED:
        r_b, r_1 = (json.loads((tmp_path / w / f"{who}_report.json").read_text())["faces"][0] for w in ("ray3", "one"))
        assert abs(r_b["scores_after"]["dlib"] - r_1["scores_after"]["dlib"]) < 2e-3 and r_b["protected"] == r_1["protected"]
        batches.append(r_b["search_batch"])
        a, b = (np.asarray(Image.open(tmp_path / w / f"{who}_protected.jpg").convert("RGB"), np.int16) for w in ("ray3", "one"))
        assert np.abs(a - b).max() <= 8  # JPEG re-encoding of pixels that moved by float noise
    assert max(batches) >= 2 and all(b <= 3 for b in batches), batches  # some faces were searched with another photo's
    assert sorted(p.name for p in (tmp_path / "ray3").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())


def test_a_row_that_breaks_in_an_actor_fails_alone(folder, tmp_path, one_torch_thread):
    "An unforeseen error inside the protecting stage is that photo's line, not the job's end (here: faces that cannot be read)."
    from c2p.engines import PhotoProtector, planned_row
    from c2p.pipeline import Job, ProtectConfig
    cfg = ProtectConfig.makeup(steps=STEPS)
    actor = PhotoProtector(cfg, PROMPT, str(tmp_path), dict(mode="dodging", seed=0, overwrite=False, steps=STEPS))
    job = Job(folder / "obama.jpg", "obama", tmp_path / "obama_protected.jpg", tmp_path / "obama_report.json")
    row = {**planned_row(0, job, {}), "faces": b"not a pickle"}
    st = json.loads(actor(row)["status"])
    assert st["status"] == "failed" and st["message"].startswith("obama.jpg: UnpicklingError"), st
    assert "\n" not in st["message"] and not any(tmp_path.iterdir())


def test_a_rerun_with_other_settings_replaces_or_keeps_like_the_local_engine(folder, tmp_path, one_torch_thread):
    "An output made with other settings is protected again and replaced (its line says so), or kept with no_overwrite."
    from c2p.engines import PhotoProtector, detect_row, planned_row
    from c2p.pipeline import Job, ProtectConfig, protect_files, run_settings
    protect_files([folder / "obama.jpg"], tmp_path, PROMPT, steps=STEPS, device="cpu", progress=False, log=lambda m: None)
    cfg = ProtectConfig.makeup(steps=STEPS, seed=1)
    job = Job(folder / "obama.jpg", "obama", tmp_path / "obama_protected.jpg", tmp_path / "obama_report.json")
    row = detect_row(planned_row(0, job, {}), cfg, threads=1)
    before = job.out_img.read_bytes()
    for no_overwrite in (True, False):
        actor = PhotoProtector(cfg, PROMPT, str(tmp_path), dict(mode="dodging", seed=1, overwrite=False, steps=STEPS),
                               want=run_settings(cfg, PROMPT), no_overwrite=no_overwrite)
        st = json.loads(actor(row)["status"])
        if no_overwrite:
            assert st["status"] == "failed" and "was made with other settings (seed 0 -> 1)" in st["message"], st
            assert st["message"].endswith("kept because of --no-overwrite") and job.out_img.read_bytes() == before
        else:
            assert st["status"] == "done" and "(replaced the earlier output: seed 0 -> 1)" in st["message"], st
            assert json.loads(job.out_rep.read_text())["settings"]["seed"] == 1


def _command(folder, out):
    return [sys.executable, "-c", "from c2p.cli import run; run()", "protect", str(folder), "--out", str(out), "--prompt", PROMPT,
            "--steps", str(STEPS), "--device", "cpu", "--quiet", "--engine", "ray"]


@pytest.mark.slow  # a minute each: CI's second pass
def test_an_interrupted_ray_job_resumes_with_only_the_missing_photos(cluster, folder, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "PYTHONUNBUFFERED": "1"}
    job = subprocess.Popen(_command(folder, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in job.stdout:  # Ctrl-C as soon as the first photo is written
            if " -> " in line: break
        job.send_signal(signal.SIGINT)
        rest, err = job.communicate(timeout=240)
    finally:
        if job.poll() is None: job.kill()
    assert job.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert "interrupted; finished outputs are complete" in err
    done = {p.name[:-len("_protected.jpg")] for p in out.glob("*_protected.jpg")}
    assert done == {p.name[:-len("_report.json")] for p in out.glob("*_report.json")}, "a photo without its report, or the reverse"
    assert 1 <= len(done) < len(PROTECTED), done
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if not p.name.startswith(".")}

    r = subprocess.run(_command(folder, out), capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode in (1, 3) and "Traceback" not in r.stderr, r.stderr[-2000:]  # 1: the two bad photos failed
    written = {p.name for p in out.iterdir() if not p.name.startswith(".") and p.name not in before}
    assert written == {f"{w}_{k}" for w in set(PROTECTED) - done for k in ("protected.jpg", "report.json")}
    assert all(out.joinpath(n).stat().st_mtime_ns == t for n, t in before.items())  # the finished photos were not touched
    lines = r.stdout.strip().splitlines()
    assert sum("already protected" in l for l in lines) == len(done)
    assert sum(" -> " in l for l in lines) == len(PROTECTED) - len(done)
    assert any("broken.jpg" in l and "error:" in l for l in lines) and any("sky.png: skipped" in l for l in lines)
    table = next(i for i, l in enumerate(lines) if l.split()[:2] == ["photos", "done"])
    assert lines[table + 1].split()[:4] == ["5", str(len(PROTECTED) - len(done)), str(len(done)), "2"], lines[table:]
