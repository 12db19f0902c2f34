"""The weights registry end to end: the real download code against a local HTTP server, never the internet."""
import hashlib
import http.server
import io
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import zipfile
from pathlib import Path

import pytest
import torch

import c2p.weights as W
from c2p.core import InputError, WeightsError

BIN = Path(sys.executable).parent


# ---------------------------------------------------------------- a tiny internet on 127.0.0.1
class Route:
    "What the server answers on one path."
    def __init__(self, data: bytes, cut_first=False, ranges=True, gdrive=False, hf=False, html_only=False):
        self.data, self.cut_first, self.ranges, self.gdrive, self.hf, self.html_only = data, cut_first, ranges, gdrive, hf, html_only
        self.cuts = 0


GDRIVE_PAGE = """<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p>{name} ({size}) is too large for Google to scan for viruses. Would you still like to download this file?</p>
<form id="download-form" action="{action}" method="get"><input type="submit" id="uc-download-link" value="Download anyway"/>
<input type="hidden" name="id" value="{id}"><input type="hidden" name="export" value="download">
<input type="hidden" name="confirm" value="t"><input type="hidden" name="uuid" value="{uuid}"></form></body></html>"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_HEAD(self):
        self._answer(head=True)

    def do_GET(self):
        self._answer(head=False)

    def _send(self, code, body=b"", headers=(), head=False):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _answer(self, head):
        srv = self.server
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        srv.log.append({"method": self.command, "path": u.path, "query": q, "range": self.headers.get("Range")})
        key = u.path + (f"?id={q['id']}" if "id" in q else "")
        route = srv.routes.get(key)
        if route is None:
            return self._send(404, b"not found", [("Content-Type", "text/plain")], head)
        if route.html_only:  # e.g. Drive's quota page
            page = b"<html><head><title>Google Drive - Quota exceeded</title></head><body>Too many users</body></html>"
            return self._send(200, page, [("Content-Type", "text/html; charset=utf-8")], head)
        if route.gdrive and "confirm" not in q:
            page = GDRIVE_PAGE.format(name="file.pt", size="380M", id=q["id"], uuid="5a7e-uuid",
                                      action=f"http://127.0.0.1:{srv.server_port}/gdrive/download").encode()
            return self._send(200, page, [("Content-Type", "text/html; charset=utf-8")], head)
        if route.gdrive and (q.get("confirm") != "t" or q.get("uuid") != "5a7e-uuid"):
            return self._send(403, b"bad confirmation", [("Content-Type", "text/plain")], head)
        data, start = route.data, 0
        extra = [("Content-Type", "application/octet-stream")]
        if route.hf:
            extra += [("X-Repo-Commit", "0123456789abcdef0123456789abcdef01234567"),
                      ("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')]
        rng = self.headers.get("Range")
        if rng and route.ranges:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                return self._send(416, b"", [("Content-Range", f"bytes */{len(data)}")], head)
            code, extra = 206, extra + [("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")]
        else:
            code = 200
        body = data[start:]
        if head:
            return self._send(code, body, extra, head=True)
        if route.cut_first and route.cuts == 0:  # promise the whole body, send half, hang up
            route.cuts += 1
            self.send_response(code)
            for k, v in extra:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self._send(code, body, extra)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.routes, srv.log = {}, []
    srv.url = f"http://127.0.0.1:{srv.server_port}"
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    "An empty c2p cache, online but pointed at nothing until a test sets C2P_MIRROR."
    h = tmp_path / "c2p-home"
    monkeypatch.setenv("C2P_HOME", str(h))
    for var in ("C2P_OFFLINE", "HF_HUB_OFFLINE", "C2P_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(W, "_BACKOFF_S", 0.01)
    return h


def checkpoint_bytes(n_out=64, seed=0) -> bytes:
    "A real small checkpoint (torch.save of a state_dict), as bytes."
    g = torch.Generator().manual_seed(seed)
    lin = torch.nn.Linear(256, n_out)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=g))
    buf = io.BytesIO()
    torch.save(lin.state_dict(), buf)
    return buf.getvalue()


def url_spec(name="test-ckpt", size=None, sha256=None, url="https://models.example.org/files/test.pt"):
    return W.WeightSpec(name, "tests", (W.Source("url", url),), "test.pt", size=size, sha256=sha256, folder="test")


def leftovers(home: Path):
    "Partial or temporary files anywhere in the cache."
    return [p for p in home.rglob("*") if p.is_file() and (".part" in p.name or p.name.endswith(".incomplete"))]


# ---------------------------------------------------------------- downloads
def test_download_verifies_records_sha_and_loads(server, home, monkeypatch):
    data = checkpoint_bytes()
    server.routes["/url/models.example.org/files/test.pt"] = Route(data)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    spec = url_spec(size=len(data))
    p = W.weights_path(spec, progress=False)
    assert p == home / "test" / "test.pt" and p.read_bytes() == data
    assert (home / "test" / "test.pt.sha256").read_text().split()[0] == hashlib.sha256(data).hexdigest()
    assert W.load_checkpoint(p)["weight"].shape == (64, 256)
    n = len(server.log)
    assert W.weights_path(spec, progress=False) == p and len(server.log) == n  # cached: no second request
    assert W.is_verified(spec) and not leftovers(home)


def test_progress_bar_is_shown(server, home, monkeypatch, capsys):
    data = checkpoint_bytes(n_out=300)
    server.routes["/url/models.example.org/files/test.pt"] = Route(data)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    W.weights_path(url_spec(name="progress-demo"), progress=True)
    err = capsys.readouterr().err
    assert "progress-demo" in err and "100%" in err


def test_resume_after_the_connection_is_cut(server, home, monkeypatch):
    data = checkpoint_bytes(n_out=512)  # ~0.5 MB
    route = server.routes["/url/models.example.org/files/test.pt"] = Route(data, cut_first=True)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    p = W.weights_path(url_spec(sha256=hashlib.sha256(data).hexdigest()), progress=False)
    assert p.read_bytes() == data and route.cuts == 1
    gets = [r for r in server.log if r["method"] == "GET"]
    assert len(gets) == 2 and gets[0]["range"] is None and gets[1]["range"] == f"bytes={len(data) // 2}-"
    assert not leftovers(home)


def test_restart_when_the_server_ignores_range(server, home, monkeypatch):
    data = checkpoint_bytes(n_out=512)
    server.routes["/url/models.example.org/files/test.pt"] = Route(data, cut_first=True, ranges=False)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    p = W.weights_path(url_spec(size=len(data)), progress=False)
    assert p.read_bytes() == data  # the second, full answer replaced the half .part instead of being appended


def test_stale_part_from_an_earlier_run_is_resumed(server, home, monkeypatch):
    data = checkpoint_bytes(n_out=300)
    server.routes["/url/models.example.org/files/test.pt"] = Route(data)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    (home / "test").mkdir(parents=True)
    (home / "test" / "test.pt.part").write_bytes(data[:1000])
    p = W.weights_path(url_spec(size=len(data)), progress=False)
    assert p.read_bytes() == data and server.log[-1]["range"] == "bytes=1000-"


def test_wrong_sha256_is_refused_and_cleaned_up(server, home, monkeypatch):
    data = checkpoint_bytes()
    # the real lpips-vgg entry: torchvision's file name carries the first 8 hex digits of its sha256
    server.routes["/url/download.pytorch.org/models/vgg16-397923af.pth"] = Route(data)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    with pytest.raises(WeightsError) as e:
        W.weights_path("lpips-vgg", progress=False)
    msg = str(e.value)
    assert hashlib.sha256(data).hexdigest() in msg and "expected 397923af" in msg
    assert str(home / "torchvision" / "vgg16-397923af.pth") in msg  # where to put a good copy
    assert not (home / "torchvision" / "vgg16-397923af.pth").exists() and not leftovers(home)


def test_wrong_size_is_refused_and_cleaned_up(server, home, monkeypatch):
    data = checkpoint_bytes()
    server.routes["/url/models.example.org/files/test.pt"] = Route(data)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    with pytest.raises(WeightsError, match=f"size {len(data):,} bytes, expected {len(data) + 1:,}"):
        W.weights_path(url_spec(size=len(data) + 1), progress=False)
    assert not list((home / "test").iterdir())  # no file, no .part, no sidecar


def test_damaged_cache_file_is_fetched_again_never_loaded(server, home, monkeypatch):
    data = checkpoint_bytes()
    server.routes["/url/models.example.org/files/test.pt"] = Route(data)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    spec = url_spec()  # size and sha unknown: the sidecar written at the first download is the reference
    p = W.weights_path(spec, progress=False)
    flipped = bytearray(data); flipped[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(flipped))  # same size, one bit flipped
    assert "sha256" in W.check_file(spec)
    monkeypatch.setenv("C2P_OFFLINE", "1")
    with pytest.raises(WeightsError, match="damaged"):
        W.weights_path(spec)  # offline: reported, not returned
    monkeypatch.delenv("C2P_OFFLINE")
    assert W.weights_path(spec, progress=False).read_bytes() == data
    assert W.check_file(spec) is None


def test_gdrive_confirmation_page_flow(server, home, monkeypatch):
    data = checkpoint_bytes(n_out=200)
    file_id = W.get_spec("stylegan2-ffhq").sources[0].ref
    server.routes[f"/gdrive/download?id={file_id}"] = Route(data, gdrive=True)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    p = W.weights_path("stylegan2-ffhq", progress=False)  # the real registry entry and the real Drive code
    assert p == home / "stylegan2" / "stylegan2-ffhq-config-f.pt" and p.read_bytes() == data
    first, second = [r["query"] for r in server.log]
    assert first == {"id": file_id, "export": "download"}
    assert second == {"id": file_id, "export": "download", "confirm": "t", "uuid": "5a7e-uuid"}


def test_gdrive_quota_page_is_a_clear_error(server, home, monkeypatch):
    file_id = W.get_spec("e4e-ffhq").sources[0].ref
    server.routes[f"/gdrive/download?id={file_id}"] = Route(b"", html_only=True)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    with pytest.raises(WeightsError, match="Quota exceeded") as e:
        W.weights_path("e4e-ffhq", progress=False)
    assert str(home / "e4e" / "e4e_ffhq_encode.pt") in str(e.value) and not leftovers(home)


def test_amtgan_zip_downloaded_once_members_extracted_zip_deleted(server, home, monkeypatch):
    members = {f"assets/models/{m}.pth": checkpoint_bytes(seed=i) for i, m in enumerate(["irse50", "ir152", "mobile_face", "facenet"])}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
        z.writestr("assets/datasets/CelebA-HQ/0001.jpg", b"not a model")
        z.writestr("__MACOSX/assets/models/._irse50.pth", b"resource fork")
    zid = W.get_spec("amtgan-irse50").sources[0].ref
    server.routes[f"/gdrive/download?id={zid}"] = Route(buf.getvalue(), gdrive=True, cut_first=True)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    p = W.weights_path("amtgan-ir152", progress=False)
    assert p.read_bytes() == members["assets/models/ir152.pth"]
    assert sorted(x.name for x in (home / "amtgan").iterdir() if not x.name.endswith(".sha256")) == \
        ["facenet.pth", "ir152.pth", "irse50.pth", "mobile_face.pth"]  # only the four, and the zip is gone
    n = len(server.log)
    for m in ("irse50", "mobile_face", "facenet"):
        assert W.weights_path(f"amtgan-{m}").read_bytes() == members[f"assets/models/{m}.pth"]
    assert len(server.log) == n and not leftovers(home)


def test_hugging_face_source_through_huggingface_hub(server, home, monkeypatch):
    from safetensors.torch import save_file, load_file
    tmp = home.parent / "clip.safetensors"
    save_file({"visual.proj": torch.randn(8, 4), "logit_scale": torch.tensor(4.6)}, str(tmp))
    data = tmp.read_bytes()
    server.routes["/hf/timm/vit_base_patch32_clip_224.openai/resolve/main/open_clip_model.safetensors"] = Route(data, hf=True)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    p = W.weights_path("clip-vit-b32", progress=False)
    assert p == home / "clip" / "open_clip_model.safetensors" and p.read_bytes() == data
    assert W.load_checkpoint(p)["visual.proj"].shape == (8, 4)
    assert [r["method"] for r in server.log] == ["HEAD", "GET"]  # huggingface_hub's protocol: metadata, then file
    assert sorted(x.name for x in (home / "clip").iterdir()) == ["open_clip_model.safetensors", "open_clip_model.safetensors.sha256"]


def test_sources_are_tried_in_order(server, home, monkeypatch):
    data = checkpoint_bytes()
    server.routes["/url/mirror-b.example.org/test.pt"] = Route(data)
    monkeypatch.setenv("C2P_MIRROR", server.url)
    spec = W.WeightSpec("two", "tests", (W.Source("url", "https://mirror-a.example.org/test.pt"),
                                         W.Source("url", "https://mirror-b.example.org/test.pt")), "test.pt", folder="t")
    assert W.weights_path(spec, progress=False).read_bytes() == data
    assert [r["path"] for r in server.log] == ["/url/mirror-a.example.org/test.pt", "/url/mirror-b.example.org/test.pt"]


# ---------------------------------------------------------------- no network
def _no_sockets(monkeypatch):
    calls = []
    def refuse(*a, **k):
        calls.append(a)
        raise OSError("network is off in this test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return calls


def test_offline_never_opens_a_socket(home, monkeypatch):
    calls = _no_sockets(monkeypatch)
    monkeypatch.setenv("C2P_OFFLINE", "1")
    for name in W.weight_names():
        spec = W.get_spec(name)
        if spec.is_package:
            assert W.weights_path(name).is_file()
            continue
        with pytest.raises(WeightsError) as e:
            W.weights_path(name)
        assert str(W.spec_path(name)) in str(e.value) and "offline" in str(e.value)
        assert any(W.human_url(s) in str(e.value) for s in spec.sources)
    assert calls == []
    monkeypatch.delenv("C2P_OFFLINE")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match="offline"):
        W.weights_path("clip-vit-b32")
    assert calls == []


def test_network_failure_is_one_clear_error(home, monkeypatch):
    calls = _no_sockets(monkeypatch)
    with pytest.raises(WeightsError) as e:
        W.weights_path("ir_se50", progress=False)
    msg = str(e.value)
    assert calls and "could not download ir_se50" in msg and "network is off" in msg
    assert str(home / "face" / "model_ir_se50.pth") in msg and "drive.google.com/file/d/1KW7bjndL3QG3sxBbZxreGHigcCCpsDgn" in msg


def test_unreachable_server_is_one_clear_error(home, monkeypatch):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()  # nothing listens there
    monkeypatch.setenv("C2P_MIRROR", f"http://127.0.0.1:{port}")
    with pytest.raises(WeightsError, match="cannot connect") as e:
        W.weights_path("facenet-vggface2", progress=False)
    assert str(home / "facenet" / "20180402-114759-vggface2.pt") in str(e.value)


# ---------------------------------------------------------------- loading and the registry
def test_pickled_module_is_refused(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    with pytest.raises(WeightsError, match="never unpickles"):
        W.load_checkpoint(tmp_path / "module.pt")


def test_registry_is_complete_and_lazy():
    names = {"stylegan2-ffhq", "e4e-ffhq", "ir_se50", "amtgan-irse50", "amtgan-ir152", "amtgan-mobile_face",
             "amtgan-facenet", "clip-vit-b32", "facenet-vggface2", "lpips-vgg", "dlib-resnet", "dlib-landmarks68"}
    assert names <= set(W.weight_names())
    code = ("import sys, c2p.weights as W; W.registry_table(); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('open_clip', 'lpips', 'dlib', 'facenet_pytorch', "
            "'huggingface_hub', 'face_recognition_models', 'gdown') or m in ('c2p.stylegan2', 'c2p.inversion', "
            "'c2p.face_models', 'c2p.makeup', 'c2p.finetuning')]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(InputError, match="did you mean e4e-ffhq"):
        W.get_spec("e4e")


def test_loaders_resolve_where_their_modules_exist():
    "Every registry loader names a real function (modules other chapters have not built yet are skipped)."
    import importlib.util
    checked = 0
    for spec in W.REGISTRY:
        if spec.loader and importlib.util.find_spec(spec.loader.split(":")[0]) is not None:
            assert callable(W.get_loader(spec.name)), spec.loader
            checked += 1
    assert checked >= 4  # c2p.stylegan2, c2p.face_models (x5), dlib exist at least


def test_colab_helper_outside_colab():
    with pytest.raises(InputError, match="Colab"):
        W.use_google_drive_cache()


def test_colab_helper_sets_the_cache(tmp_path, monkeypatch):
    import types
    drive = types.SimpleNamespace(mount=lambda where: pytest.fail("no mount needed outside /content/drive"))
    colab = types.ModuleType("google.colab"); colab.drive = drive
    google = types.ModuleType("google"); google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setenv("C2P_HOME", str(tmp_path / "before"))
    folder = W.use_google_drive_cache(str(tmp_path / "MyDrive" / "c2p-cache"))
    assert folder.is_dir() and W.cache_dir() == folder


# ---------------------------------------------------------------- the command
def _c2p(argv, home, **env):
    "The real `c2p` console script of this venv, in a fresh process."
    e = {**os.environ, "C2P_HOME": str(home), **env}
    e.pop("C2P_MIRROR", None)
    return subprocess.run([str(BIN / "c2p"), *argv], capture_output=True, text=True, env=e, timeout=120)


class Proc:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def c2p_main(capsys, monkeypatch):
    "`c2p.cli.main` in this process (each console-script start costs seconds of imports)."
    from c2p.cli import main
    def run(argv, home, **env):
        monkeypatch.setenv("C2P_HOME", str(home))
        monkeypatch.delenv("C2P_MIRROR", raising=False)
        for var in ("C2P_OFFLINE", "HF_HUB_OFFLINE"):
            monkeypatch.delenv(var, raising=False)
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        capsys.readouterr()
        code = main(argv)
        out = capsys.readouterr()
        return Proc(code, out.out, out.err)
    return run


def test_cli_on_a_fresh_machine(tmp_path, c2p_main):
    home = tmp_path / "empty-home"
    proc = _c2p(["weights", "list"], home, C2P_OFFLINE="1")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split()[:4] == ["name", "size", "cached", "verified"] and len(lines) == len(W.REGISTRY) + 1
    row = {l.split()[0]: l.split() for l in lines[1:]}
    assert row["stylegan2-ffhq"][2] == "no" and row["dlib-resnet"][3] == "package"
    proc = _c2p(["weights", "path", "dlib-resnet"], home)
    assert proc.returncode == 0 and Path(proc.stdout.strip()).is_file()
    run = c2p_main  # the rest in-process
    proc = run(["weights", "path", "stylegan2-ffhq"], home)
    assert proc.returncode == 1 and proc.stdout.strip() == str(home / "stylegan2" / "stylegan2-ffhq-config-f.pt")
    proc = run(["weights", "download", "e4e-ffhq"], home, C2P_OFFLINE="1")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and str(home / "e4e" / "e4e_ffhq_encode.pt") in proc.stderr
    proc = run(["weights", "path", "no-such"], home)
    assert proc.returncode == 2 and "no weights called" in proc.stderr and "Traceback" not in proc.stderr
    proc = run(["weights", "verify"], home)
    assert proc.returncode == 0 and "not downloaded" in proc.stdout
    assert not home.exists() or not leftovers(home)


def test_cli_verify_fails_on_a_damaged_file(tmp_path, c2p_main):
    run = c2p_main
    home = tmp_path / "home"
    (home / "face").mkdir(parents=True)
    p = home / "face" / "model_ir_se50.pth"
    p.write_bytes(checkpoint_bytes())
    assert run(["weights", "verify", "ir_se50"], home).returncode == 0  # first check records the digest
    p.write_bytes(checkpoint_bytes()[:-100])  # truncated later
    proc = run(["weights", "verify"], home)
    assert proc.returncode == 1 and "DAMAGED" in proc.stdout and "sha256" in proc.stdout
    assert "CORRUPT" in run(["weights", "list", "--check"], home).stdout
