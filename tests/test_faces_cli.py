"""Bad input and the `c2p faces` command, on real photos: one clear error, no traceback, nothing written, inputs untouched."""
import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from c2p.cli import main
from c2p.core import InputError, OutputExistsError, shared_dir
from c2p.faces import MAX_PIXELS, detect_faces, load_photo, save_photo

ROOT = Path(__file__).resolve().parent.parent
FACES = (shared_dir() or ROOT.parent / "shared") / "faces"  # missing: its tests are skipped (marker shared)
GROUP = FACES / "group" / "two_people.jpg"
OBAMA = ROOT / "c2p" / "data" / "obama_official_portrait.jpg"


def _png_header(width, height):
    "A tiny PNG that declares `width` x `height` RGB pixels (with one empty data chunk)."
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _gradient_png():
    b = io.BytesIO()
    Image.fromarray(np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))).convert("RGB").save(b, "PNG")
    return b.getvalue()


BAD = {  # file name -> (content, words the one-line message must contain)
    "notes.jpg": (b"this is a text file, not a photo\n", "not an image"),
    "truncated.jpg": (OBAMA.read_bytes()[:60000], "truncated"),
    "empty.png": (b"", "empty"),
    "tiny.png": (None, "too small"),
    "bomb.png": (_png_header(100_000, 100_000), "declares 10000 MP, over the 100 MP limit"),
    "big.png": (_png_header(12_000, 9_000), "limit"),  # 108 MP: over c2p's limit, under Pillow's own
}


@pytest.fixture
def bad_files(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for name, (data, _) in BAD.items():
        if data is None:
            Image.new("RGB", (1, 1), "white").save(d / name)
        else:
            (d / name).write_bytes(data)
    return d


@pytest.mark.parametrize("name", list(BAD))
def test_load_photo_bad_input(bad_files, name):
    with pytest.raises(InputError) as e:
        load_photo(bad_files / name)
    msg = str(e.value)
    assert name in msg and BAD[name][1] in msg and "\n" not in msg


def test_load_photo_missing_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_photo(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="not a file"):
        load_photo(tmp_path)
    with pytest.raises(InputError):
        load_photo(12345)


def test_bomb_is_refused_before_decoding(tmp_path):
    # the header alone decides: a 10-gigapixel declaration costs no memory and no time
    assert 100_000 * 100_000 > MAX_PIXELS
    with pytest.raises(InputError):
        load_photo(_png_header(100_000, 100_000))
    with pytest.raises(InputError, match="over the 100 MP limit"):
        load_photo(_png_header(12_000, 9_000))


def test_no_face_in_a_gradient():
    assert detect_faces(load_photo(_gradient_png()).image) == []


@pytest.mark.parametrize("name", list(BAD))
def test_cli_bad_photo_one_line_nothing_written(bad_files, tmp_path, capsys, name):
    out = tmp_path / "out"
    before = (bad_files / name).read_bytes()
    assert main(["faces", str(bad_files / name), "--out", str(out), "--device", "cpu"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("c2p faces: error:") and name in err[0], err
    assert not out.exists() or not any(out.iterdir())
    assert (bad_files / name).read_bytes() == before


def test_cli_no_face(tmp_path, capsys):
    photo = tmp_path / "gradient.png"
    photo.write_bytes(_gradient_png())
    out = tmp_path / "out"
    assert main(["faces", str(photo), "--out", str(out), "--device", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"c2p faces: error: {photo}: no face found (faces smaller than 32 px are not looked for)"]
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.shared  # the group photo of ../shared/faces (two faces, a known size)
def test_cli_carries_on_after_a_failure(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not a photo")
    out = tmp_path / "out"
    assert main(["faces", str(bad), str(GROUP), "--out", str(out), "--size", "128", "--device", "cpu"]) == 1
    cap = capsys.readouterr()
    assert "notes.jpg" in cap.err and "Traceback" not in cap.err
    assert sorted(p.name for p in out.iterdir()) == ["two_people_face0.png", "two_people_face1.png", "two_people_faces.json"]
    rec = json.loads((out / "two_people_faces.json").read_text())
    assert rec["photo"] == str(GROUP.resolve()) and rec["size"] == [1126, 661] and rec["aligned_size"] == 128
    for f in rec["faces"]:
        assert set(f) >= {"box", "landmarks5", "score", "matrix", "quad", "crop"} and f["score"] > 0.9
        assert Image.open(out / f["crop"]).size == (128, 128)
        # the matrix sends the quad's corners to the crop's outer corners
        q = np.c_[np.array(f["quad"]), np.ones(4)] @ np.array(f["matrix"]).T
        assert np.allclose(q[:, :2], [[-0.5, -0.5], [-0.5, 127.5], [127.5, 127.5], [127.5, -0.5]], atol=1e-3)
    assert rec["faces"][0]["box"][0] < rec["faces"][1]["box"][0]  # left to right


def test_cli_never_overwrites(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["faces", str(OBAMA), "--out", str(out), "--size", "64", "--device", "cpu"]
    assert main(args) == 0
    snapshot = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--overwrite" in err[0]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == snapshot
    assert main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(snapshot)  # no temporary leftovers


def test_cli_refuses_to_write_onto_an_input(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    victim = out / "obama_official_portrait_face0.png"  # an input that an output of the portrait would replace
    Image.open(OBAMA).save(victim)
    before = victim.read_bytes()
    assert main(["faces", str(OBAMA), str(victim), "--out", str(out), "--overwrite", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would write over the input" in err[0]
    assert victim.read_bytes() == before and sorted(p.name for p in out.iterdir()) == ["obama_official_portrait_face0.png"]


def test_cli_argument_errors(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(); b.mkdir()
    (a / "x.jpg").write_bytes(OBAMA.read_bytes()); (b / "x.jpg").write_bytes(OBAMA.read_bytes())
    assert main(["faces", str(a / "x.jpg"), str(b / "x.jpg"), "--out", str(tmp_path / "o")]) == 2
    assert "collide" in capsys.readouterr().err
    assert main(["faces", str(OBAMA), "--out", str(tmp_path / "o"), "--size", "5"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main(["faces", str(OBAMA), "--out", str(tmp_path / "o"), "--device", "tpu:9"]) == 2
    assert not (tmp_path / "o").exists()


def test_save_photo_never_replaces_the_input(tmp_path):
    src = tmp_path / "me.jpg"
    src.write_bytes(OBAMA.read_bytes())
    photo = load_photo(src)
    with pytest.raises(OutputExistsError):
        save_photo(photo.image, src, like=photo, overwrite=True)
    assert src.read_bytes() == OBAMA.read_bytes()


def _console_script():
    exe = Path(sys.executable).parent / "c2p"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "c2p.cli"]


def test_console_script_bad_input(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    out = tmp_path / "out"
    r = subprocess.run(_console_script() + ["faces", str(bad), "--out", str(out), "--device", "cpu"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"c2p faces: error: {bad}: not an image (unknown format, or a damaged header)"]
    assert not out.exists() or not any(out.iterdir())


def test_console_script_landmarks68(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(_console_script() + ["faces", str(OBAMA), "--out", str(out), "--size", "256", "--landmarks68",
                                            "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads((out / "obama_official_portrait_faces.json").read_text())
    assert len(rec["faces"]) == 1 and np.array(rec["faces"][0]["landmarks68"]).shape == (68, 2)
    assert Image.open(out / "obama_official_portrait_face0.png").size == (256, 256)
