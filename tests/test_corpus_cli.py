"""Issue 13's corpus of odd inputs and broken disks, built here from the shared photos, run through the `c2p` commands.

Every case asserts the exit code, one line per problem and never a traceback, the files that exist afterwards (nothing
partial, no temporary or lock files) and that every input's sha256 is unchanged. Refusals are checked to happen before
any model loads. Only a few cases run the (tiny, 1-6 step) protection itself. `python tests/test_corpus_cli.py` prints
the corpus table (tests/CORPUS.md).
"""
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from c2p.core import shared_dir

FACES = shared_dir() / "faces" if shared_dir() else None
ROOT = Path(__file__).resolve().parent.parent
TINY = ["--preset", "tiny", "--pti-steps", "0", "--quiet"]
RED = ["--prompt", "red lipstick"]
LOOK = "c2p protect: look:"  # the line every run starts with: the look it applies and the words it ignored


# ---------------------------------------------------------------- the corpus
def _face(width=600) -> Image.Image:
    "A real one-face photo (Kit Harington from shared/faces; without it the public-domain Biden portrait), small enough to be quick."
    from c2p.faces import sample_photo
    im = Image.open(FACES / "kit_harington/john1.jpg" if FACES else sample_photo("biden")).convert("RGB")
    return im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)


def _bomb_png() -> bytes:
    "A valid PNG header declaring 100000 x 100000 pixels, a few bytes of data."
    import struct, zlib
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def build_corpus(root: Path) -> dict:
    "Write every odd input into `root`; return {case: path}."
    root.mkdir(parents=True, exist_ok=True)
    face, c = _face(), {}
    def save(name, im=None, data=None, **kw):
        p = root / name
        if data is not None: p.write_bytes(data)
        else: im.save(p, **kw)
        c[name] = p
        return p
    save("empty.jpg", data=b"")
    save("text.jpg", data=b"hello, I am a text file\n" * 20)
    b = io.BytesIO(); face.save(b, "JPEG", quality=90)
    save("truncated.jpg", data=b.getvalue()[: len(b.getvalue()) // 3])
    save("one_pixel.png", Image.new("RGB", (1, 1)))
    save("drawing.svg.jpg", data=b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400"><circle r="9"/></svg>')
    save("fake.heic", data=b"\0\0\0\x18ftypheic" + os.urandom(2000))
    save("bomb.png", data=_bomb_png())
    save("png_named.jpg", face, format="PNG")
    save("palette.gif", face.convert("P", palette=Image.ADAPTIVE))
    save("animated.gif", face.convert("P", palette=Image.ADAPTIVE), save_all=True,
         append_images=[face.rotate(5).convert("P", palette=Image.ADAPTIVE)])
    save("jpeg_named.heic", face, format="JPEG", quality=90)
    save("cmyk.jpg", face.convert("CMYK"), quality=90)
    save("sixteen_bit.png", Image.fromarray((np.asarray(face.convert("L"), np.uint16) * 257)))
    save("gray.jpg", face.convert("L"), quality=90)
    rgba = face.convert("RGBA"); rgba.putalpha(200)
    save("rgba.png", rgba)
    save("frames.tif", face, save_all=True, append_images=[face.rotate(10)])
    save("photo.webp", face, quality=90)
    ex = Image.open(FACES / "angelina_jolie/1.jpg").getexif()  # a camera EXIF block with a GPS IFD
    ex[0x0112] = 6  # stored sideways: view rotated 90 degrees clockwise
    save("rotated_gps.jpg", face.transpose(Image.Transpose.ROTATE_90), quality=90, exif=ex.tobytes())
    save("фото лицо 😀.jpg", face, quality=90)
    save("no_face.png", Image.fromarray(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))).convert("RGB"))
    save("tiny_face.jpg", _face(160), quality=95)  # the face is about 20 px: under the detector's 32 px
    loop = root / "loop.jpg"
    if not loop.is_symlink(): os.symlink(loop.name, loop)  # a link to itself
    c["loop.jpg"] = loop
    return c


def sha(paths) -> dict:
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths if Path(p).is_file()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    cases = build_corpus(root / "in")
    before = sha(cases.values())
    yield root, cases
    assert sha(cases.values()) == before  # no command changed any input


@pytest.fixture
def no_models(monkeypatch):
    "Refusals must come before any model loads: loading one fails the test."
    import c2p.pipeline as pl
    import c2p.engines as en  # imported here, unpatched: its own binding of load_models is patched (and restored) too
    def boom(*a, **k): raise AssertionError("a model was loaded before the refusal")
    monkeypatch.setattr(pl, "load_models", boom)
    monkeypatch.setattr(pl, "adversarial_search", boom)
    monkeypatch.setattr(en, "load_models", boom)


ROWS = []  # (case, command, exit code, message, files written, inputs intact, seconds) for the table


def record(case, cmd, code, msg, written, intact=True, seconds=None):
    ROWS.append((case, cmd, code, msg, written, intact, seconds))


def cli(argv, capsys):
    "Run `c2p` in this process; return (exit code, result lines (stdout) then stderr lines, stdout, seconds)."
    from c2p.cli import main
    t = time.perf_counter()
    code = main(argv)
    secs = time.perf_counter() - t
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, [l for l in (out + err).splitlines() if l.strip()], out, secs


def cli_split(argv, capsys):
    "Run `c2p` in this process; return (exit code, stderr lines, stdout, seconds): notes and progress apart from results."
    from c2p.cli import main
    t = time.perf_counter()
    code = main(argv)
    secs = time.perf_counter() - t
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, [l for l in err.splitlines() if l.strip()], out, secs


def cli_looked(argv, capsys):
    "`cli`, its lines in the order a terminal shows them: the look line (said before the work), results, then the rest."
    code, err, out, secs = cli_split(argv, capsys)
    looks = [l for l in err if l.startswith(LOOK)]
    return code, looks + [l for l in out.splitlines() if l.strip()] + [l for l in err if l not in looks], out, secs


def files_in(d) -> list[str]:
    d = Path(d)
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def leftovers(d) -> list[str]:
    "Temporary folders, partial files and lock files: none may survive a run."
    return [n for n in files_in(d) if n.startswith(".") or ".part" in n or n.endswith("lock")]


# ---------------------------------------------------------------- refusals before any work
BAD_FILES = {
    "empty.jpg": "empty file", "text.jpg": "not an image", "truncated.jpg": "damaged or truncated",
    "one_pixel.png": "too small", "drawing.svg.jpg": "not an image", "fake.heic": "not an image",
    "bomb.png": "over the 100 MP limit", "loop.jpg": "looping symbolic link",
}


@pytest.mark.shared
@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_photo_is_one_line_before_any_model(name, corpus, no_models, capsys, tmp_path):
    root, cases = corpus
    out = tmp_path / "out"
    code, lines, _, secs = cli(["protect", str(cases[name]), "--out", str(out), *RED, *TINY], capsys)
    assert code == 1 and len(lines) == 1, lines
    assert lines[0].startswith("c2p protect: error:") and BAD_FILES[name] in lines[0] and name in lines[0], lines
    assert files_in(out) == []
    record(name, "protect", code, lines[0], files_in(out), seconds=secs)


REFUSED = [  # (case, extra argv, words in the one line)
    ("--lambda-adv nan", ["--lambda-adv", "nan"], "--lambda-adv must be a finite number"),
    ("--lambda-adv inf", ["--lambda-adv", "inf"], "--lambda-adv must be a finite number"),
    ("--lambda-adv -0.7", ["--lambda-adv", "-0.7"], "--lambda-adv must be 0 or more"),
    ("--lambda-clip nan", ["--lambda-clip", "nan"], "--lambda-clip must be a finite number"),
    ("--steps 0", ["--steps", "0"], "--steps must be"),
    ("--pti-steps -3", ["--pti-steps", "-3"], "--pti-steps must be"),
    ("--seed -1", ["--seed", "-1"], "--seed must be"),
    ("emoji prompt", ["--prompt", "💄💋✨"], "has no words"),
    ("blank prompt", ["--prompt", "   "], "prompt is empty"),
    ("--layers 17-8", ["--layers", "17-8"], "layers"),
    ("target without a face", ["--mode", "impersonation", "--target", "{no_face.png}"], "no face found"),
    ("target missing", ["--mode", "impersonation", "--target", "{missing.jpg}"], "does not exist"),
    ("target not an image", ["--mode", "impersonation", "--target", "{text.jpg}"], "the target photo"),
    ("--out is a file", ["--out", "{text.jpg}"], "is a file"),
]


@pytest.mark.shared
@pytest.mark.parametrize("case,extra,words", REFUSED, ids=[r[0] for r in REFUSED])
def test_refusal_is_one_line_exit_2_before_any_model(case, extra, words, corpus, no_models, capsys, tmp_path):
    root, cases = corpus
    extra = [str(cases.get(a[1:-1], root / a[1:-1])) if a.startswith("{") else a for a in extra]
    argv = ["protect", str(cases["png_named.jpg"]), "--out", str(tmp_path / "out"), *RED, *TINY]
    argv += extra  # later options win
    code, lines, _, secs = cli(argv, capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("c2p protect: error:") and words in lines[0], lines
    assert files_in(tmp_path / "out") == []
    record(case, "protect", code, lines[0], [], seconds=secs)


PROMPTS_REFUSED = [  # the default (makeup) preset reads the prompt before any model: (case, prompt, words in the line)
    ("prompt without makeup", "green beard and cat whiskers", "names no makeup product"),
    ("prompt in Italian", "rossetto rosso", "French, Spanish, German and Portuguese"),
    ("contradictory prompt", "no makeup, heavy makeup", "asks for no makeup and for makeup at once"),
]


@pytest.mark.parametrize("case,prompt,words", PROMPTS_REFUSED, ids=[r[0] for r in PROMPTS_REFUSED])
def test_makeup_prompt_refused_with_vocabulary(case, prompt, words, no_models, capsys, tmp_path):
    code, lines, _, secs = cli(["protect", str(_one_photo(tmp_path)), "--out", str(tmp_path / "out"), "--prompt", prompt], capsys)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("c2p protect: error:") and words in lines[0], lines
    if "no makeup and" not in words:  # a prompt c2p cannot read comes back with the vocabulary
        assert "lipstick" in lines[0] and "smoky eyes" in lines[0], lines
    assert files_in(tmp_path / "out") == []
    record(case, f"protect --prompt {prompt!r}", code, lines[0][:160] + "...", [], seconds=secs)


LOOKS_READ = [  # (prompt, what the look line must say)
    ("rouge à lèvres rouge et fard à paupières doré", "eyeshadow (gold), lips (red)"),
    ("labial rojo y sombra de ojos dorada", "eyeshadow (gold), lips (red)"),
    ("roter Lippenstift, rauchige Augen", "eyeshadow (smoky), eyeliner (black), lips (red)"),
    ("batom vermelho", "lips (red)"),
    ("red lipstick and zorblax", "lips (red); base: foundation, contour, highlighter, brows; ignored: zorblax"),
]


@pytest.mark.parametrize("prompt,look", LOOKS_READ, ids=[r[0] for r in LOOKS_READ])
def test_foreign_and_partly_read_prompts_say_their_look(prompt, look, no_models, tmp_path):
    from c2p.pipeline import look_line, parse_look, preflight
    plan = preflight([_one_photo(tmp_path)], tmp_path / "out", prompt)  # the default preset reads it before any model
    said = look_line(parse_look(plan.prompt, plan.cfg), plan.prompt, plan.cfg)
    assert said.startswith("look: ") and look in said, said
    record(f"prompt {prompt!r}", "protect (pre-flight)", None, said, [])


# ---------------------------------------------------------------- formats decided by content, notes, no model
@pytest.mark.shared
def test_output_format_is_decided_by_content(corpus, no_models, tmp_path):
    from c2p.pipeline import preflight
    root, cases = corpus
    names = ["png_named.jpg", "palette.gif", "animated.gif", "jpeg_named.heic", "cmyk.jpg", "sixteen_bit.png", "gray.jpg",
             "rgba.png", "frames.tif", "photo.webp", "rotated_gps.jpg", "фото лицо 😀.jpg"]
    plan = preflight([cases[n] for n in names], tmp_path / "out", "red lipstick", preset="tiny")
    got = {j.path.name: (j.out_img.name, j.notes) for j in plan.jobs}
    assert all(not j.status for j in plan.jobs), [(j.path.name, j.message) for j in plan.jobs]
    assert got["png_named.jpg"][0] == "png_named_protected.png"
    assert got["jpeg_named.heic"][0] == "jpeg_named_protected.jpg"
    assert got["palette.gif"][0].endswith(".png") and got["animated.gif"][0].endswith(".png")
    assert "only the first of its 2 frames is used" in got["animated.gif"][1]
    assert "only the first of its 2 frames is used" in got["frames.tif"][1]
    assert "its transparency is flattened onto white" in got["rgba.png"][1]
    assert got["photo.webp"][0].endswith(".png") and got["cmyk.jpg"][0].endswith(".jpg")
    for n, (o, notes) in got.items():
        assert Path(o).suffix in (".jpg", ".png"), o  # never GIF, HEIC, WebP or TIFF
        record(n, "protect (pre-flight)", None, f"-> {o}" + (f"; note: {'; '.join(notes)}" if notes else ""), [])
    assert files_in(tmp_path / "out") == []


@pytest.mark.shared
def test_faces_reads_every_format(corpus, capsys, tmp_path):
    root, cases = corpus
    names = ["cmyk.jpg", "sixteen_bit.png", "gray.jpg", "rgba.png", "frames.tif", "photo.webp", "rotated_gps.jpg",
             "фото лицо 😀.jpg", "palette.gif", "jpeg_named.heic"]
    out = tmp_path / "faces"
    code, lines, out_s, _ = cli(["faces", *[str(cases[n]) for n in names], "--out", str(out), "--size", "64"], capsys)
    assert code == 0, lines
    notes = [l for l in lines if l.startswith("c2p faces: note:")]  # extra frames and alpha are said ...
    assert all(l in notes or " face(s) -> " in l for l in lines), lines  # ... next to one result line per photo
    assert sum(" face(s) -> " in l for l in out_s.splitlines()) == len(names), out_s  # the results on stdout
    for n in names:
        stem = Path(n).stem
        assert f"{stem}_face0.png" in files_in(out) and f"{stem}_faces.json" in files_in(out), n
        rec = json.loads((out / f"{stem}_faces.json").read_text())
        assert len(rec["faces"]) == 1, n
        record(n, "faces", 0, next((l for l in notes if n in l), "1 face"), [f"{stem}_face0.png", f"{stem}_faces.json"])
    assert json.loads((out / "rotated_gps_faces.json").read_text())["size"] == list(_face().size)  # upright
    assert (os.stat(out / "cmyk_face0.png").st_mode & 0o777) == 0o666 & ~_umask()
    assert leftovers(out) == []


def _umask():
    m = os.umask(0o022); os.umask(m); return m


@pytest.mark.shared
def test_faces_bad_inputs_and_no_face(corpus, capsys, tmp_path):
    root, cases = corpus
    out = tmp_path / "faces"
    code, lines, _, _ = cli(["faces", str(cases["text.jpg"]), str(cases["no_face.png"]), str(cases["tiny_face.jpg"]),
                             "--out", str(out)], capsys)
    assert code == 1 and len(lines) == 4, lines  # one line per photo, then the summary
    assert "not an image" in lines[0] and "no face found (faces smaller than 32 px" in lines[1] and "tiny_face" in lines[2]
    assert files_in(out) == []
    record("tiny_face.jpg (a 20 px face)", "faces", code, lines[2], [])
    code, lines, _, _ = cli(["faces", str(cases["gray.jpg"]), "--out", str(cases["text.jpg"])], capsys)
    assert code == 2 and len(lines) == 1 and "is a file" in lines[0]
    record("--out is a file", "faces", code, lines[0], [])


@pytest.mark.shared
def test_compare_every_face_and_no_verdict(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("C2P_HOME", str(tmp_path / "cache")); monkeypatch.setenv("C2P_OFFLINE", "1")
    a, group = FACES / "obama/obama_official_portrait.jpg", FACES / "group/two_people.jpg"
    code, err, out, _ = cli_split(["compare", str(a), str(group), "--models", "dlib,irse50,facenet"], capsys)
    lines = out.splitlines()
    assert code == 0 and err == [], err
    assert "face 1/2" in lines[0] and "face 2/2" in lines[2] and lines[1].strip().startswith("dlib")
    assert "same person" in lines[1] and "different people" in lines[3]  # Obama is the first face of the group photo
    assert len(lines) == 5 and lines[4].startswith("irse50, facenet: weights not in the cache")  # one line for both
    record("compare: a group photo", "compare", code, " / ".join(l.strip() for l in lines[:2]), [])
    code, err, out, _ = cli_split(["compare", str(a), str(group), "--models", "irse50,facenet"], capsys)
    assert code == 1 and len(out.splitlines()) == 1 and len(err) == 1 and "no verdict" in err[0]
    record("compare: no weights", "compare", code, err[0], [])


@pytest.mark.shared
def test_evaluate_refuses_unwritable_json_before_models(corpus, capsys, tmp_path, monkeypatch):
    import c2p.evaluation as ev
    monkeypatch.setattr(ev, "load_judges", lambda *a, **k: (_ for _ in ()).throw(AssertionError("models loaded")))
    root, cases = corpus
    folder = tmp_path / "done"; folder.mkdir()
    (folder / "x_report.json").write_text(json.dumps({"input": "x.jpg", "mode": "dodging"}))
    for dest, words in ((tmp_path, "is a folder"), (cases["text.jpg"] / "r.json", "is a file")):
        code, lines, _, _ = cli(["evaluate", str(folder), "--json", str(dest), "--overwrite"], capsys)
        assert code == 2 and len(lines) == 1 and words in lines[0], lines
    record("evaluate --json into a file", "evaluate", code, lines[0], [])


# ---------------------------------------------------------------- runs that do the work (tiny settings)
@pytest.mark.shared
def test_mixed_folder_out_is_in(corpus, capsys, tmp_path):
    "A folder of good, bad and faceless photos protected into itself: one line each, the good one written, inputs intact."
    root, cases = corpus
    d = tmp_path / "mixed"; d.mkdir()
    for n in ["png_named.jpg", "text.jpg", "empty.jpg", "no_face.png", "fake.heic", "bomb.png"]: shutil.copy(cases[n], d / n)
    os.symlink("loop.jpg", d / "loop.jpg")
    before, names = sha(d.iterdir()), set(files_in(d))
    code, lines, _, secs = cli(["protect", str(d), "--out", str(d), *RED, *TINY, "--steps", "1"], capsys)
    assert code == 1, lines
    looks = [l for l in lines if l.startswith(LOOK)]
    assert len(looks) == 1 and "tiny preset" in looks[0], lines  # what the prompt becomes, said once before the work
    lines = [l for l in lines if not l.startswith(LOOK)]
    assert len(lines) == 8 and lines[-1].startswith("c2p protect: 7 photos: 0 protected, 1 written but not protected, 6 failed")
    for n in ["text.jpg", "empty.jpg", "fake.heic", "bomb.png", "loop.jpg"]:
        assert sum(n in l for l in lines[:-1]) == 1, (n, lines)
    assert any("no_face.png: skipped, no face found" in l for l in lines)
    assert sha(before) == before
    assert sorted(set(files_in(d)) - names) == ["png_named_protected.png", "png_named_report.json"]
    assert Image.open(d / "png_named_protected.png").format == "PNG" and leftovers(d) == []
    # the pixels outside the face are the input's own bits (PNG)
    a, b = np.asarray(Image.open(d / "png_named.jpg")), np.asarray(Image.open(d / "png_named_protected.png"))
    changed = (a != b).any(-1)
    assert 0 < changed.mean() < 0.2
    record("mixed folder, --out = the folder", "protect", code, lines[-1], ["png_named_protected.png", "png_named_report.json"],
           seconds=secs)
    # a rerun does no work: the finished photo is said to be done, with its verdict
    code, lines, _, secs = cli(["protect", str(d), "--out", str(d), *RED, *TINY, "--steps", "1"], capsys)
    assert code == 1 and any("png_named.jpg: already protected" in l and "NOT protected" in l for l in lines), lines
    record("rerun of the mixed folder", "protect", code, next(l for l in lines if "already protected" in l), [], seconds=secs)


# ---------------------------------------------------------------- issue 20: covered faces, stdout, target, refusals
def _portrait(name):
    from c2p.faces import detect_faces, sample_photo
    im = Image.open(sample_photo(name)).convert("RGB")
    return im, detect_faces(im, landmarks68=True)[0]


@pytest.mark.slow  # tens of seconds: CI's second pass (keeps the test command under 15 minutes)
def test_covered_faces_drop_products_and_never_paint_the_occluder_or_teeth(capsys, tmp_path):
    "Sunglasses, a mask and a hand (Biden), and a dark photo of an open smile (Obama): --json names what was dropped."
    from c2p.occlusion import draw_occluder, find_occlusion
    from c2p.cosmetics import face_canvas, rgb_to_lab
    import torch
    d = tmp_path / "in"; d.mkdir()
    made = {}
    for who, kind in (("biden", "sunglasses"), ("biden", "mask"), ("biden", "hand"), ("obama", "dark")):
        im, face = _portrait(who)
        made[kind] = (im, face, draw_occluder(im, face.landmarks68, kind))
        made[kind][2].save(d / f"{who}_{kind}.png")
    out = tmp_path / "out"
    code, lines, stdout, secs = cli(["protect", str(d), "--out", str(out), "--prompt", "smoky eyes and red lipstick",
                                     "--steps", "4", "--quiet", "--json"], capsys)
    rows = {Path(r["input"]).stem.split("_")[1]: r for r in map(json.loads, stdout.splitlines())}
    assert sorted(rows) == ["dark", "hand", "mask", "sunglasses"] and code in (0, 3), stdout
    cov = {k: [f["covered"] for f in r["occlusion"]][0] if r.get("occlusion") else {} for k, r in rows.items()}
    dropped = {k: r["occlusion"][0]["dropped"] if r.get("occlusion") else [] for k, r in rows.items()}
    assert set(cov["sunglasses"]) == {"eyes"} and {"eyeshadow", "eyeliner"} <= set(dropped["sunglasses"])
    assert "lips" in cov["mask"] and "lips" in dropped["mask"] and "eyeshadow" not in dropped["mask"]
    assert set(cov["hand"]) == {"lips"} and dropped["hand"] == ["lips"]
    assert cov["dark"] == {} and dropped["dark"] == []
    assert "eyes covered (sunglasses?): no eye makeup" in rows["sunglasses"]["message"]
    for kind, (clean, face, im) in made.items():
        after = np.asarray(Image.open(rows[kind]["output"]).convert("RGB"), np.int16)
        painted = np.abs(after - np.asarray(im, np.int16)).max(-1) > 2
        assert painted.sum() > 1000, kind  # the face was made up ...
        if kind != "dark":  # ... but not the occluder
            occluder = np.abs(np.asarray(im, np.int16) - np.asarray(clean, np.int16)).max(-1) > 10
            assert painted[occluder].mean() < 0.01, (kind, painted[occluder].mean())
        else:  # ... nor the teeth
            x0, y0, w, h = face_canvas(face.landmarks68, im.size)
            t = lambda a: torch.from_numpy(np.asarray(a, np.float32)[y0:y0 + h, x0:x0 + w] / 255).permute(2, 0, 1)[None]
            teeth = find_occlusion(t(im), np.asarray(face.landmarks68, np.float64) - [x0, y0]).opening[0, 0] > 0.5
            dE = (rgb_to_lab(t(after)) - rgb_to_lab(t(im))).norm(dim=1)[0][teeth]
            assert teeth.sum() > 200 and float(dE.mean()) < 1.0, (int(teeth.sum()), float(dE.mean()))
    record("sunglasses / mask / hand / dark open mouth (--json)", "protect", code,
           rows["sunglasses"]["message"].split(": ", 1)[1][:160], files_in(out), seconds=secs)


@pytest.mark.shared
def test_result_lines_on_stdout_progress_on_stderr(corpus, capsys, tmp_path):
    "With progress bars on: every result line on stdout, none on stderr; no line glued to a bar."
    root, cases = corpus
    d = tmp_path / "in"; d.mkdir()
    shutil.copy(cases["png_named.jpg"], d / "kit.jpg")
    Image.new("RGB", (300, 300), (90, 140, 200)).save(d / "sky.png")
    out = tmp_path / "out"
    code, _, stdout, secs = cli(["protect", str(d), "--out", str(out), *RED, "--preset", "tiny", "--pti-steps", "0", "--steps", "1"], capsys)
    outs = stdout.splitlines()
    assert code == 1 and len(outs) == 3 and all(l.startswith("c2p protect: ") for l in outs), outs
    assert any("kit.jpg -> " in l for l in outs) and any("sky.png: skipped" in l for l in outs) and "2 photos:" in outs[-1]
    record("result lines (stdout) vs progress (stderr)", "protect", code, outs[-1], files_in(out), seconds=secs)


def test_impersonating_the_same_person_is_refused(capsys, tmp_path):
    from c2p.faces import sample_photo
    out = tmp_path / "out"
    code, lines, stdout, secs = cli(["protect", str(sample_photo("obama")), "--out", str(out), *RED, "--mode",
                                     "impersonation", "--target", str(sample_photo("obama")), "--quiet"], capsys)
    assert code == 2 and len(lines) == 1 and "already taken for the person in" in lines[0] and stdout == "", lines
    assert not out.exists()
    record("impersonation target = the same person", "protect", code, lines[0], [], seconds=secs)


def test_sideways_and_cut_off_faces_and_sub_folders_are_named(capsys, tmp_path, no_models):
    "No face upright: the line says the face shows when turned, or is cut off; sub-folders are named; no empty --out left."
    face = _face()
    d = tmp_path / "in"; (d / "holiday").mkdir(parents=True)
    face.transpose(Image.Transpose.ROTATE_90).save(d / "sideways.jpg", quality=92)  # no EXIF orientation
    from c2p.faces import detect_faces
    x0, _, x1, _ = detect_faces(face)[0].box
    face.crop((int((x0 + x1) / 2), 0, face.width, face.height)).save(d / "cut.jpg", quality=92)  # cut through the nose
    face.save(d / "holiday" / "kit.jpg", quality=92)
    out = tmp_path / "out" / "new"
    code, lines, stdout, secs = cli(["protect", str(d), "--out", str(out), *RED, *TINY], capsys)
    text = "\n".join(lines)
    assert code == 1 and "sideways.jpg: a face is found only when the photo is turned" in text, text
    assert "no EXIF rotation" in text and "cut.jpg: a face" in text and "cut off at the photo's edge" in text, text
    assert "sub-folders not looked into (use --recursive)" in text and "holiday" in text
    assert not out.exists() and not out.parent.exists()  # the folders this run made are gone again
    record("sideways / cut-off face, a sub-folder", "protect", code, next(l for l in lines if "sideways" in l), [], seconds=secs)


def _c2p(*argv, **kw):
    return subprocess.Popen([sys.executable, "-c", "from c2p.cli import run; run()", *map(str, argv)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, **kw)


@pytest.mark.shared
def test_sigint_then_resume_not_protected(tmp_path):
    "Ctrl-C mid-run leaves nothing partial and exits 130; the rerun finishes; 1 step is not enough: exit 3 and says so."
    d = tmp_path / "in"; d.mkdir()
    _face().save(d / "kit.jpg", quality=92)
    before = sha([d / "kit.jpg"])
    out = tmp_path / "out"
    p = _c2p("protect", d, "--out", out, *RED, *TINY, "--steps", "1")
    t0 = time.time()
    while not (out / ".kit.c2p-lock").exists() and p.poll() is None and time.time() - t0 < 60: time.sleep(0.05)
    time.sleep(1.0)
    p.send_signal(signal.SIGINT)
    err = "".join(p.communicate(timeout=120))
    lines = [l for l in err.strip().splitlines() if not l.startswith(LOOK)]
    assert p.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err
    assert files_in(out) == []  # no partial output, no lock, no temporary folder
    record("SIGINT during the run", "protect", 130, lines[0], [])
    p = _c2p("protect", d, "--out", out, *RED, *TINY, "--steps", "1")
    err = "".join(p.communicate(timeout=300))
    lines = [l for l in err.strip().splitlines() if not l.startswith(LOOK)]
    assert p.returncode == 3 and len(lines) == 1, err
    assert "kit.jpg ->" in lines[0] and "NOT protected: still matched by dlib (attacked: distance" in lines[0]
    assert files_in(out) == ["kit_protected.jpg", "kit_report.json"]
    assert (os.stat(out / "kit_protected.jpg").st_mode & 0o777) == 0o666 & ~_umask()
    # JPEG: the source's quantisation tables and subsampling, so pixels away from the face barely move
    src, res = Image.open(d / "kit.jpg"), Image.open(out / "kit_protected.jpg")
    assert res.quantization == src.quantization
    rep = json.loads((out / "kit_report.json").read_text())
    x0, y0, x1, y1 = rep["faces"][0]["box"]; w, h = x1 - x0, y1 - y0
    a, b = np.asarray(src.convert("RGB"), np.int16), np.asarray(res.convert("RGB"), np.int16)
    far = np.ones(a.shape[:2], bool); far[max(0, int(y0 - h)):int(y1 + h), max(0, int(x0 - w)):int(x1 + w)] = False
    diff = np.abs(a - b).max(-1)[far]
    global JPEG_OUTSIDE
    JPEG_OUTSIDE = ((diff > 0).mean(), int(diff.max()))
    assert JPEG_OUTSIDE[0] < 0.1 and JPEG_OUTSIDE[1] <= 16, JPEG_OUTSIDE
    assert sha([d / "kit.jpg"]) == before
    record("resume after SIGINT (--steps 1)", "protect", 3, lines[0], files_in(out))


JPEG_OUTSIDE = None


@pytest.mark.shared
def test_concurrent_runs_claim_each_photo(tmp_path):
    "Two runs on one folder: each photo is protected once; both runs end knowing both verdicts."
    d = tmp_path / "in"; d.mkdir()
    face = _face()
    face.save(d / "a.jpg", quality=92); face.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(d / "b.jpg", quality=92)
    out = tmp_path / "out"
    p1 = _c2p("protect", d, "--out", out, *RED, *TINY, "--steps", "1")
    time.sleep(0.3)
    p2 = _c2p("protect", d, "--out", out, *RED, *TINY, "--steps", "1")
    errs = ["".join(p.communicate(timeout=400)) for p in (p1, p2)]
    for p, e in zip((p1, p2), errs): assert p.returncode == 3 and "Traceback" not in e, e
    written = [l for e in errs for l in e.splitlines() if " -> " in l]
    assert len(written) == 2 and {l.split(":")[1].split()[0] for l in written} == {"a.jpg", "b.jpg"}, errs  # no photo twice
    assert all("2 photos: 0 protected, 2 written but not protected" in e for e in errs), errs
    assert files_in(out) == ["a_protected.jpg", "a_report.json", "b_protected.jpg", "b_report.json"]
    record("two concurrent runs, one folder", "protect", "3, 3", "; ".join(written).replace("c2p protect: ", ""), files_in(out))


def _can_mount() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0: return False
    r = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"], capture_output=True)
    return r.returncode == 0


@pytest.mark.shared
@pytest.mark.skipif(not _can_mount(), reason="needs root and `unshare -m` to mount a read-only / full file system")
def test_read_only_and_full_disk_then_resume_protected(tmp_path):
    "A read-only --out is refused before any work; a disk that fills mid-write leaves nothing; the rerun is protected."
    d = tmp_path / "in"; d.mkdir()
    _face().save(d / "kit.jpg", quality=92)
    mnt = tmp_path / "mnt"; mnt.mkdir()
    c2p = f"{sys.executable} -c 'from c2p.cli import run; run()'"
    rep = tmp_path / "done"; rep.mkdir()
    (rep / "kit_report.json").write_text(json.dumps({"input": str(d / "kit.jpg"), "mode": "dodging"}))
    args = f"{d} {' '.join(RED[:1])} 'red lipstick' {' '.join(TINY)} --steps 6"
    script = f"""
mount -t tmpfs -o ro,size=1m tmpfs {mnt}
s=$EPOCHREALTIME; {c2p} protect {args} --out {mnt}/out 2>&1; echo "rc=$? t=$s $EPOCHREALTIME"
{c2p} faces {d}/kit.jpg --out {mnt}/faces 2>&1; echo "rc=$?"
{c2p} evaluate {rep} --json {mnt}/results.json 2>&1; echo "rc=$?"
mount -o remount,rw,size=24k tmpfs {mnt}
{c2p} protect {args} --out {mnt}/out 2>&1; echo "rc=$?"; ls -A {mnt}/out; echo ls-done
mount -o remount,rw,size=20m tmpfs {mnt}
{c2p} protect {args} --out {mnt}/out 2>&1; echo "rc=$?"; ls -A {mnt}/out
"""
    r = subprocess.run(["unshare", "-m", "bash", "-c", script], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    out = [l for l in r.stdout.splitlines() if not l.startswith(LOOK)]
    assert "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    ro, rc1 = out[0], out[1]
    assert "not writable (Read-only file system)" in ro and rc1.startswith("rc=2"), out
    t0, t1 = map(float, rc1.split("t=")[1].split())
    record("--out on a read-only file system (fresh process)", "protect", 2, ro, [], seconds=t1 - t0)
    for (msg, rc), cmd in zip((out[2:4], out[4:6]), ("faces", "evaluate --json")):
        assert "not writable (Read-only file system)" in msg and rc == "rc=2", out
        record("output on a read-only file system", cmd, 2, msg, [])
    out = out[:2] + out[6:]
    full, rc2 = out[2], out[3]
    assert "No space left on device" in full and rc2 == "rc=1" and out[4] == "ls-done", out  # nothing left behind
    record("disk full while writing", "protect", 1, full, [])
    done, rc3, listing = out[5], out[6], out[7:]
    assert rc3 == "rc=0" and "the face protected against dlib (attacked: distance" in done, out
    assert listing == ["kit_protected.jpg", "kit_report.json"], out
    record("rerun after the disk was freed (--steps 6)", "protect", 0, done, listing)


# ---------------------------------------------------------------- issue 17: reruns, the look, Ctrl-C, long names, README
# These use the portraits installed with c2p (c2p/data), so they run on a fresh clone without ../shared.
MAKEUP1 = ["--steps", "1", "--quiet"]  # the default makeup preset, one search step: the plumbing, not the protection


def _small_biden(width=480) -> Image.Image:
    "Biden's official portrait (public domain, installed with c2p), small enough to be quick."
    from c2p.faces import sample_photo
    im = Image.open(sample_photo("biden")).convert("RGB")
    return im.resize((width, round(im.height * width / im.width)), Image.LANCZOS)


def _one_photo(tmp_path, name="alex.jpg") -> Path:
    d = tmp_path / "in"; d.mkdir(exist_ok=True)
    _small_biden().save(d / name, quality=92)
    return d / name


@pytest.mark.usefixtures("one_torch_thread")
def test_rerun_compares_the_recorded_settings(capsys, tmp_path):
    "Same settings: already protected. Other prompt/seed/strength: protected again and replaced, or kept with --no-overwrite."
    photo, out = _one_photo(tmp_path), tmp_path / "out"
    before = sha([photo])
    code, lines, _, _ = cli_looked(["protect", str(photo), "--out", str(out), *RED, *MAKEUP1], capsys)
    assert code in (0, 3) and lines[0].startswith(LOOK) and "(red)" in lines[0] and "alex.jpg -> " in lines[1], lines
    first = (out / "alex_protected.jpg").read_bytes()
    code, lines, _, secs = cli_looked(["protect", str(photo), "--out", str(out), *RED, *MAKEUP1], capsys)
    assert len(lines) == 1 and "alex.jpg: already protected (alex_protected.jpg)" in lines[0], lines
    assert (out / "alex_protected.jpg").read_bytes() == first
    record("rerun, same settings", "protect", code, lines[0], [], seconds=secs)
    for extra, change in ((["--prompt", "green eyeshadow"], "prompt 'red lipstick' -> 'green eyeshadow'"),
                          (["--seed", "7"], "seed 0 -> 7"), (["--strength", "bold"], "strength natural -> bold")):
        code, lines, _, secs = cli_looked(["protect", str(photo), "--out", str(out), *RED, *MAKEUP1, *extra, "--no-overwrite"], capsys)
        assert code == 1 and len(lines) == 1 and change in lines[0] and "kept because of --no-overwrite" in lines[0], lines
        assert (out / "alex_protected.jpg").read_bytes() == first
        record(f"rerun, {' '.join(extra)}, --no-overwrite", "protect", code, lines[0], [], seconds=secs)
    code, lines, _, _ = cli_looked(["protect", str(photo), "--out", str(out), *RED, "--overwrite", "--no-overwrite"], capsys)
    assert code == 2 and len(lines) == 1 and "contradict" in lines[0], lines
    code, lines, _, secs = cli_looked(["protect", str(photo), "--out", str(out), "--prompt", "green eyeshadow", *MAKEUP1], capsys)
    assert code in (0, 3) and lines[0].startswith(LOOK) and "eyeshadow (green)" in lines[0], lines
    assert "alex.jpg -> " in lines[1] and "(replaced the earlier output: prompt 'red lipstick' -> 'green eyeshadow')" in lines[1]
    assert json.loads((out / "alex_report.json").read_text())["prompt"] == "green eyeshadow"
    assert (out / "alex_protected.jpg").read_bytes() != first and files_in(out) == ["alex_protected.jpg", "alex_report.json"]
    assert sha([photo]) == before
    record("rerun, --prompt 'green eyeshadow'", "protect", code, lines[1], files_in(out), seconds=secs)


@pytest.mark.slow  # a 40-step run held while the second waits: minutes on two busy cores
def test_concurrent_runs_with_other_settings_say_who_holds_the_photo(tmp_path):
    "The second run names the run holding the photo and what it asked for, waits, then protects with its own prompt."
    photo, out = _one_photo(tmp_path), tmp_path / "out"
    p1 = _c2p("protect", photo, "--out", out, *RED, "--steps", "40", "--quiet")
    t0 = time.time()
    while not (out / ".alex.c2p-lock").exists() and p1.poll() is None and time.time() - t0 < 120: time.sleep(0.05)
    held = (out / ".alex.c2p-lock").read_text().splitlines()
    assert held[0] == str(p1.pid) and "prompt 'red lipstick', preset makeup, mode dodging" in held[1], held
    p2 = _c2p("protect", photo, "--out", out, "--prompt", "green eyeshadow", *MAKEUP1)
    (o1, e1), (o2, e2) = (p.communicate(timeout=600) for p in (p1, p2))
    assert p1.returncode in (0, 3) and p2.returncode in (0, 3) and "Traceback" not in e1 + e2, (e1, e2)
    wait = next(l for l in e2.splitlines() if "another c2p run" in l)
    assert (f"another c2p run (pid {p1.pid}, prompt 'red lipstick', preset makeup, mode dodging, strength natural, seed 0) "
            "is protecting it; waiting for it at the end") in wait, e2
    assert "(replaced the earlier output: prompt 'red lipstick' -> 'green eyeshadow')" in o2, (o2, e2)  # a result: stdout
    assert json.loads((out / "alex_report.json").read_text())["prompt"] == "green eyeshadow"
    assert files_in(out) == ["alex_protected.jpg", "alex_report.json"]
    record("two concurrent runs, other prompts, one photo", "protect", f"{p1.returncode}, {p2.returncode}", wait, files_in(out))


@pytest.fixture
def stop_at_model_load(monkeypatch):
    "Ctrl-C where the models would load: the look line has been said by then, and no search runs."
    import c2p.pipeline as pl
    import c2p.engines as en  # as in no_models: engines keeps its own binding
    def stop(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(pl, "load_models", stop)
    monkeypatch.setattr(en, "load_models", stop)


@pytest.mark.parametrize("prompt, preset, look", [
    ("red lipstick, cat whiskers", "makeup", ("lips (red)", "; ignored: cat, whiskers")),
    ("smoky eyes with a beard", "makeup", ("eyeshadow (smoky)", "eyeliner (black)", "; ignored: beard")),
    ("red lipstick", "tiny", ("the tiny preset's generator search, guided by CLIP with the whole prompt 'red lipstick'",)),
])
def test_every_run_says_the_look_and_the_ignored_words(prompt, preset, look, stop_at_model_load, capsys, tmp_path):
    photo = _one_photo(tmp_path)
    code, lines, _, _ = cli_looked(["protect", str(photo), "--out", str(tmp_path / "out"), "--prompt", prompt, "--preset", preset,
                             "--quiet"], capsys)
    assert code == 130 and lines[0].startswith(LOOK) and all(w in lines[0] for w in look) and "interrupted" in lines[1], lines
    record(f"look of {prompt!r} ({preset})", "protect", None, lines[0], [])


@pytest.mark.xfail(strict=False, reason="needs the multilingual parse_prompt of chapter 8b (the lead's change)")
def test_a_french_prompt_is_understood(stop_at_model_load, capsys, tmp_path):
    code, lines, _, _ = cli_looked(["protect", str(_one_photo(tmp_path)), "--out", str(tmp_path / "out"), "--prompt",
                             "rouge à lèvres rouge", "--quiet"], capsys)
    assert lines[0].startswith(LOOK) and "lips (red)" in lines[0] and "blush" not in lines[0].split(";")[0], lines
    record("French: 'rouge à lèvres rouge'", "protect", None, lines[0], [])


@pytest.mark.xfail(strict=False, reason="needs parse_prompt to refuse prompts without a makeup product (the lead's change)")
def test_a_prompt_without_a_product_is_refused_with_the_vocabulary(no_models, capsys, tmp_path):
    code, lines, _, _ = cli_looked(["protect", str(_one_photo(tmp_path)), "--out", str(tmp_path / "out"), "--prompt",
                             "green beard and cat whiskers", "--quiet"], capsys)
    assert code == 2 and len(lines) == 1 and "lipstick" in lines[0] and "eyeshadow" in lines[0], lines
    assert files_in(tmp_path / "out") == []
    record("no product: 'green beard and cat whiskers'", "protect", code, lines[0], [])


def _maps_torch(pid) -> bool:
    try: return "libtorch" in Path(f"/proc/{pid}/maps").read_text()
    except OSError: return False


@pytest.mark.slow  # tens of seconds: CI's second pass (keeps the test command under 15 minutes)
def test_ctrl_c_at_any_moment_is_one_line_and_130(tmp_path):
    "SIGINT while Python imports torch, while the models load, during the search: exit 130, one line, nothing written."
    photo, out = _one_photo(tmp_path), tmp_path / "out"
    for delay in ("torch", 1.0, 2.5, 5.0, 9.0):
        p = _c2p("protect", photo, "--out", out, *RED, "--steps", "60", "--quiet")
        if delay == "torch":  # once torch's native library is mapped: its import is under way and c2p's handler is in place
            t0 = time.time()
            while not _maps_torch(p.pid) and p.poll() is None and time.time() - t0 < 60: time.sleep(0.005)
        else:
            time.sleep(delay)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
        lines = [l for l in err.strip().splitlines() if not l.startswith(LOOK)]
        assert p.returncode == 130 and len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, (delay, err)
        assert files_in(out) == []  # nothing partial, no lock, no temporary folder
        record(f"Ctrl-C while torch loads" if delay == "torch" else f"Ctrl-C after {delay} s (fresh process)", "protect", 130, lines[0], [])


@pytest.mark.usefixtures("one_torch_thread")
def test_long_file_names_are_protected(capsys, tmp_path):
    "250-character names (ASCII, and 2-byte letters up to 254 bytes): outputs, locks and temporary files fit the limit."
    d = tmp_path / "in"; d.mkdir()
    names = ["a" * 246 + ".jpg", "é" * 125 + ".jpg"]
    for n in names: _small_biden().save(d / n, quality=92)
    assert len(f".{Path(names[0]).stem}.c2p-lock".encode()) > 255  # the lock named after the photo could not exist
    out = tmp_path / "out"
    code, lines, _, secs = cli_looked(["protect", str(d), "--out", str(out), *RED, *MAKEUP1], capsys)
    assert code in (0, 3) and sum(" -> " in l for l in lines) == 2, lines
    made = files_in(out)
    assert len(made) == 4 and all(len(n.encode()) <= 255 for n in made) and leftovers(out) == [], made
    assert all(any(n.startswith(Path(x).stem[:80]) for n in made) for x in names)  # recognisably the photo's name
    code, lines, _, _ = cli_looked(["protect", str(d), "--out", str(out), *RED, *MAKEUP1], capsys)
    assert sum("already protected" in l for l in lines) == 2, lines
    record("two 250-character file names", "protect", 3, "; ".join(l.replace("c2p protect: ", "") for l in lines if "already" in l)[:160] + " ...",
           [f"{n[:12]}...{n[-30:]}" for n in made], seconds=secs)


@pytest.mark.slow
def test_readme_first_python_example_runs_offline(tmp_path):
    "README's first Python example, as written, on a photo: the default preset, offline, no weights in the cache."
    import re
    block = re.search(r"In Python:\s+```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S).group(1)
    _small_biden(600).save(tmp_path / "photo.jpg", quality=92)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "C2P_OFFLINE": "1", "C2P_HOME": str(tmp_path / "empty-cache"),
           "C2P_SHARED": "none", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.strip().startswith("{'dlib':") and (tmp_path / "photo_protected.jpg").exists(), r.stdout
    record("README's first Python example (fresh process, offline)", "python", 0, r.stdout.strip(), ["photo_protected.jpg"],
           seconds=time.perf_counter() - t)


# ---------------------------------------------------------------- the table
def _scrub(text: str) -> str:
    "The table without machine paths: pytest's temporary folders and the shared folder by name."
    import re
    text = re.sub(r"/tmp/pytest-of-[^/]+/pytest-\d+/", "<tmp>/", text)
    return text.replace(str(FACES.parent), "shared") if FACES else text


def write_table(path: Path):
    head = "| case | command | exit | message | files written | inputs intact | seconds |\n|---|---|---|---|---|---|---|\n"
    esc = lambda s: _scrub(str(s).replace(str(ROOT) + "/", "")).replace("|", "\\|").replace("\n", " ")
    rows = "".join(f"| {esc(c)} | {cmd} | {'' if code is None else code} | {esc(msg)} | {esc(', '.join(w)) or '-'} | "
                   f"{'yes' if ok else 'NO'} | {'' if s is None else f'{s:.2f}'} |\n" for c, cmd, code, msg, w, ok, s in ROWS)
    extra = (f"\nJPEG output, pixels away from the face (beyond one face size around its box): {JPEG_OUTSIDE[0]:.2%} changed, "
             f"at most {JPEG_OUTSIDE[1]}/255 (source quantisation tables kept).\n") if JPEG_OUTSIDE else ""
    path.write_text("# The bad-input corpus (issues 13 and 17)\n\nMade by `python tests/test_corpus_cli.py` (pytest on this file, then "
                    "this table; `C2P_SLOW=1` adds the slow rows, and the rows built from ../shared need it). Machine paths are shown as <tmp> and shared. Zero tracebacks; every input's sha256 unchanged; no partial, temporary or lock file left. Seconds: wall time of the command, in this process (modules already imported) unless it says fresh process (imports included, which is nearly all of it: the refusal itself takes milliseconds, before any model loads).\n\n" + head + rows + extra)


if __name__ == "__main__":
    code = pytest.main([__file__, "-q", "-p", "no:cacheprovider", *sys.argv[1:]])
    mod = next(m for n, m in sys.modules.items() if n.endswith("test_corpus_cli") and m is not sys.modules["__main__"])
    mod.write_table(ROOT / "tests" / "CORPUS.md")
    print((ROOT / "tests" / "CORPUS.md").read_text())
    sys.exit(code)
