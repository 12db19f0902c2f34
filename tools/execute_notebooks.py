#!/usr/bin/env python
"""Execute the notebooks in place so that they are stored with their outputs, as a reader sees them.

    python tools/execute_notebooks.py                 # every notebook in nbs/
    python tools/execute_notebooks.py nbs/01_faces.ipynb nbs/11_studio.ipynb

Each notebook runs top to bottom in a fresh kernel from the current code (the checkout's c2p, not an installed one),
with fixed seeds and without the developers' ../shared folder (C2P_SHARED points nowhere), so the stored outputs are
what anyone gets from a clone or on Colab, and no photo outside the package's public-domain samples ends up stored.
Then the outputs are made reproducible and small: timings and machine paths are replaced by placeholders, progress bars
dropped, PNGs downscaled (and reduced to 256 colours when still large); the notebook's metadata records a hash of its
code cells (tests/test_notebooks.py compares it with the current code: a changed notebook that was not re-executed
fails), and nbdev_clean strips the volatile metadata while keeping the outputs.

A notebook whose execution fails is left untouched and the command exits non-zero, naming the cell.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
HASH_KEY = "c2p_code_hash"     # notebook metadata key (kept by nbdev_clean: settings.ini allowed_metadata_keys)
MAX_WIDTH = 900                # stored PNGs wider than this are downscaled
QUANTIZE_ABOVE = 120_000       # PNGs still larger than this many bytes are reduced to 256 colours
BUDGET = 15_000_000            # all notebooks together, bytes

# Run before the notebook's own cells, in its kernel, then removed from the stored notebook.
SETUP = """\
import os, random
os.environ.setdefault("TQDM_DISABLE", "1")
random.seed(0)
import numpy as np; np.random.seed(0)
import torch; torch.manual_seed(0)
import matplotlib; matplotlib.rcParams.update({"figure.dpi": 72, "savefig.dpi": 72})
%config InlineBackend.figure_formats = ["png"]
%config InlineBackend.print_figure_kwargs = {"bbox_inches": "tight", "metadata": {"Software": None}}
"""


def code_hash(nb) -> str:
    "sha256 of a notebook's code cells (each cell's source without trailing whitespace; cell order matters)."
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    text = "\n\x1e\n".join(("".join(c["source"]) if isinstance(c["source"], list) else c["source"]).rstrip() for c in cells)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_stale(nb) -> bool:
    "True when the notebook's code cells differ from those it was last executed with (or it never was)."
    return nb.get("metadata", {}).get(HASH_KEY) != code_hash(nb)


# -- scrubbing: what would differ between two runs or two machines ---------------------------------------------------
_TIMING = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?\s?(?:ms|s|sec|seconds|min)\b(?!\w)")
_TMP = re.compile(r"(?:/private)?(?:/tmp|/var/folders/[\w/]+?/T)/[\w.\-]+")
_ADDR = re.compile(r" at 0x[0-9a-f]{6,}")


def scrub_text(text: str, paths: dict[str, str]) -> str:
    "Replace machine paths, temporary folders, object addresses and timings by placeholders."
    for real, shown in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(real, shown)
    text = _TMP.sub("<tmp>", text)
    text = re.sub(r"<tmp>/(?:tmp|c2p-)[\w.\-]+", "<tmp>", text)  # a temporary folder's random name
    text = _ADDR.sub("", text)
    return _TIMING.sub("<time>", text)


def small_png(data: bytes, max_width: int = MAX_WIDTH) -> bytes:
    "A PNG downscaled to `max_width` and, when still large, reduced to 256 colours; the original if that is smaller."
    from PIL import Image
    im = Image.open(io.BytesIO(data)); im.load()
    if im.width > max_width:
        im = im.resize((max_width, round(im.height * max_width / im.width)), Image.Resampling.LANCZOS)
    buf = io.BytesIO(); im.save(buf, format="PNG", optimize=True); out = buf.getvalue()
    if len(out) > QUANTIZE_ABOVE:
        q = im.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.FLOYDSTEINBERG)
        buf = io.BytesIO(); q.save(buf, format="PNG", optimize=True)
        if len(buf.getvalue()) < len(out): out = buf.getvalue()
    return out if len(out) < len(data) else data


def tidy_outputs(nb, paths: dict[str, str]):
    "Scrub every output in place; drop progress bars (stderr with carriage returns) and empty streams."
    for cell in nb.cells:
        if cell.cell_type != "code": continue
        kept = []
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                if out.name == "stderr" and ("\r" in out.text or "it/s]" in out.text or "s/it]" in out.text): continue
                out.text = scrub_text(out.text, paths)
                if not out.text.strip(): continue
            elif out.output_type in ("display_data", "execute_result"):
                data = out.get("data", {})
                if "image/png" in data: data.pop("image/jpeg", None)  # a PIL image comes as both: keep one
                for mime in list(data):
                    if mime == "image/png":
                        raw = base64.b64decode(data[mime])
                        data[mime] = base64.b64encode(small_png(raw)).decode()
                    elif mime.startswith("text/"):
                        val = data[mime]
                        data[mime] = scrub_text("".join(val) if isinstance(val, list) else val, paths)
            elif out.output_type == "error":
                out.traceback = [scrub_text(t, paths) for t in out.traceback]
            kept.append(out)
        cell.outputs = kept


_VIEW = "application/vnd.jupyter.widget-view+json"
_STATE = "application/vnd.jupyter.widget-state+json"


def _is_tqdm(out, state) -> bool:
    model = state.get(out.get("data", {}).get(_VIEW, {}).get("model_id"), {})
    kids = [state.get(k.replace("IPY_MODEL_", ""), {}).get("model_name") for k in model.get("state", {}).get("children", [])]
    return model.get("model_name") == "HBoxModel" and len(kids) == 3 and kids[1] in ("FloatProgressModel", "IntProgressModel")


def prune_widgets(nb):
    "Keep only the widget state that displayed widgets use (not every widget a cell made), under stable ids."
    import json
    state = nb.metadata.get("widgets", {}).get(_STATE, {}).get("state", {})
    for c in nb.cells:  # tqdm's progress bars (HTML, progress, HTML in a box) show timings: drop them
        if c.cell_type == "code":
            c.outputs = [o for o in c.get("outputs", []) if not _is_tqdm(o, state)]
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if _VIEW in o.get("data", {})]
    order, todo = [], [o["data"][_VIEW]["model_id"] for o in views]
    while todo:
        m = todo.pop(0)
        if m in order or m not in state: continue
        order.append(m)
        todo += re.findall(r"IPY_MODEL_([0-9a-f]{32})", json.dumps(state[m]))
    if not order:
        nb.metadata.pop("widgets", None); return
    new = {m: f"{i + 1:032x}" for i, m in enumerate(order)}  # random uuids would change at every execution
    text = json.dumps({m: state[m] for m in order})
    for m, n in new.items(): text = text.replace(m, n)
    nb.metadata["widgets"][_STATE]["state"] = json.loads(text)
    for o in views:
        o["data"][_VIEW]["model_id"] = new.get(o["data"][_VIEW]["model_id"], o["data"][_VIEW]["model_id"])


def figures(nb) -> int:
    "How many image/png outputs a notebook stores."
    return sum("image/png" in o.get("data", {}) for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", []))


def execute(path: Path, timeout: int, with_shared: bool) -> tuple[int, int]:
    "Execute one notebook in place; return (figures, bytes stored)."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    digest = code_hash(nb)
    setup = nbformat.v4.new_code_cell(SETUP)
    nb.cells.insert(0, setup)
    env_keep = {k: os.environ.get(k) for k in ("C2P_SHARED", "PYTHONPATH", "PYTHONHASHSEED", "TQDM_DISABLE", "MPLBACKEND")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env_keep["PYTHONPATH"]] if env_keep["PYTHONPATH"] else []))
    os.environ["PYTHONHASHSEED"], os.environ["TQDM_DISABLE"] = "0", "1"
    os.environ.pop("MPLBACKEND", None)
    if not with_shared: os.environ["C2P_SHARED"] = str(Path(tempfile.gettempdir()) / "c2p-no-shared-folder")
    try:
        client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=False,
                                resources={"metadata": {"path": str(path.parent)}}, store_widget_state=True)
        client.execute()
    finally:
        for k, v in env_keep.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    nb.cells.pop(0)
    paths = {str(ROOT): "<repo>", str(Path.home()): "~", sys.prefix: "<python>"}
    tidy_outputs(nb, paths)
    prune_widgets(nb)
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code": cell.execution_count = None
    nb.metadata[HASH_KEY] = digest
    tmp = path.with_name(f".{path.name}.executing")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)
    exe = Path(sys.executable).parent / "nbdev_clean"
    subprocess.run([str(exe) if exe.exists() else "nbdev_clean", "--fname", str(path)], cwd=ROOT, check=True)
    import json
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("metadata", {}).get(HASH_KEY) != digest or code_hash(stored) != digest:
        raise SystemExit(f"{path.name}: nbdev_clean dropped or changed the code hash (check allowed_metadata_keys)")
    return figures(stored), path.stat().st_size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", help="notebooks to execute (default: every nbs/*.ipynb)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    ap.add_argument("--with-shared", action="store_true",
                    help="let the notebooks see ../shared (their stored outputs may then show photos of unknown rights)")
    args = ap.parse_args(argv)
    paths = [Path(p).resolve() for p in args.notebooks] or sorted(NBS.glob("*.ipynb"))
    failed = []
    for p in paths:
        t0 = time.time()
        try:
            n, size = execute(p, args.timeout, args.with_shared)
            print(f"{p.name}: {n} figure(s), {size / 1e3:.0f} kB ({time.time() - t0:.0f} s)", flush=True)
        except Exception as e:  # report and go on with the others; the failed notebook is left as it was
            msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()
            print(f"{p.name}: FAILED ({type(e).__name__}) {msg[-1] if msg else ''}", flush=True)
            failed.append(p.name)
    total = sum(q.stat().st_size for q in NBS.glob("*.ipynb"))
    print(f"all notebooks: {total / 1e6:.1f} MB stored (budget {BUDGET / 1e6:.0f} MB)")
    if failed: print("failed:", ", ".join(failed))
    return 1 if failed or total > BUDGET else 0


if __name__ == "__main__":
    sys.exit(main())
