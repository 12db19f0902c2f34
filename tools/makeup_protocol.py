"""The makeup preset's protocol on the developers' shared photos (needs ../shared/faces): dodging with several prompts,
judged by dlib itself (its own detector and chip) on the saved photos, against every photo of the same person.

    python tools/makeup_protocol.py [--prompts "red lipstick;smoky eyes;..."] [--out DIR] [--steps N] [--strength S]

Prints one row per face and prompt (distances to the person's photos before/after, after JPEG 75 and a 0.5x resize,
the lambda_adv = 0 control, the look report's numbers and verdict, seconds) and the totals, and writes a before/after
sheet per face (sheet_*.png) into the output folder. Numbers, not a test: the README quotes them.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from c2p.core import shared_dir
from c2p.cosmetics import parse_prompt, region_masks, face_canvas
from c2p.evaluation import DLIB_THRESHOLD, DlibJudge, recompress, rescale
from c2p.faces import load_photo, save_photo
from c2p.looks import look_report
from c2p.pipeline import ProtectConfig, load_models, protect

def region_psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float | None:
    "PSNR (dB) of two uint8 images over the pixels where `mask` is true (None if identical there)."
    if not mask.any(): return None
    d = (a.astype(np.float64) - b.astype(np.float64))[mask]
    mse = float((d ** 2).mean())
    return None if mse == 0 else round(10 * np.log10(255 ** 2 / mse), 1)

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", default="red lipstick;smoky eyes;dark plum lips and winged liner;natural pink blush;nude lips")
    ap.add_argument("--strength", default=None, help="subtle, natural (default), bold, max or 0.1-1")
    ap.add_argument("--out", default=None)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--people", default=None, help="comma-separated folder names (default: all)")
    ap.add_argument("--group-only", action="store_true", help="only the two faces of the group photo")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    root = shared_dir()
    if root is None: raise SystemExit("needs the shared photos (../shared/faces)")
    faces = root / "faces"
    people = sorted(p for p in faces.iterdir() if p.is_dir() and p.name != "group")
    if args.people: people = [p for p in people if p.name in args.people.split(",")]
    photos = {p.name: sorted(p.glob("*.jpg")) for p in people}
    group = faces / "group" / "two_people.jpg"
    out = Path(args.out or tempfile.mkdtemp(prefix="c2p-protocol-"))
    out.mkdir(parents=True, exist_ok=True)
    judge = DlibJudge()
    emb = {}  # descriptor of every original photo's largest face
    for name, ps in photos.items():
        for p in ps: emb[p] = judge.embed(load_photo(p).image)
    models = load_models(ProtectConfig.makeup(**({"strength": args.strength} if args.strength else {})), device="cpu")
    control = load_models(models.config.override(lambda_adv=0.0), device="cpu")
    jobs = [] if args.group_only else [(name, p, None) for name, ps in photos.items() for p in ps]
    if args.people is None or "group" in args.people: jobs += [("obama", group, 0), ("biden", group, 1)]  # left to right
    rows, sheets = [], {}
    for prompt in args.prompts.split(";"):
        for name, path, face_i in jobs:
            t = time.perf_counter()
            res = protect(path, prompt, models=models, progress=False, **({"steps": args.steps} if args.steps else {}))
            secs = time.perf_counter() - t
            stem = f"{name}_{path.stem}_{face_i if face_i is not None else 0}_{prompt.replace(' ', '-')}"
            # saved as `c2p protect` saves it (the source's own JPEG tables): the look report judges what people get
            saved = save_photo(res.image, out / f"{stem}.jpg", like=res.photo, overwrite=True)
            prot = load_photo(saved).image
            ctrl = protect(path, prompt, models=control, progress=False, steps=1)
            ctrl = load_photo(save_photo(ctrl.image, out / f"{stem}_control.jpg", like=ctrl.photo, overwrite=True)).image
            fr = res.faces[face_i or 0] if face_i is not None else res.faces[0]
            box = [float(v) for v in fr.face.box]
            refs = photos[name]
            def dists(im):
                e = judge.embed(im, box if face_i is not None else None)
                return None if e is None else [round(judge.score(e, emb[r]), 3) for r in refs if emb[r] is not None]
            orig_im = load_photo(path).image
            before = dists(orig_im)
            after = dists(prot)
            jpeg = dists(recompress(prot, 75))
            s = 0.5
            half = judge.embed(rescale(prot, s), [v * s for v in box] if face_i is not None else None)
            half = None if half is None else [round(judge.score(half, emb[r]), 3) for r in refs if emb[r] is not None]
            ctl = dists(ctrl)
            # PSNR per region, at the photo's resolution
            look = parse_prompt(prompt)
            a0, a1 = np.asarray(orig_im), np.asarray(prot)
            lm = fr.face.landmarks68
            x0, y0, w, h = face_canvas(lm, orig_im.size)
            m = region_masks(lm, (x0, y0, w, h), look.names, wing=look.wing).numpy() > 0.5
            full = lambda mm: np.pad(mm, ((y0, a0.shape[0] - y0 - h), (x0, a0.shape[1] - x0 - w)))
            psnr = {n: region_psnr(a0, a1, full(m[i])) for i, n in enumerate(look.names)}
            lk = look_report(orig_im, prot, lm, products=look.shown, blush=look.blush)
            rep_face = res.report["faces"][face_i or 0]
            rows.append(dict(prompt=prompt, person=name, photo=path.name, face=face_i, before=before, after=after,
                             jpeg75=jpeg, half=half, control=ctl, psnr=psnr, seconds=round(secs, 1),
                             steps=rep_face["steps"], look={k: round(v, 2) for k, v in lk["numbers"].items()},
                             look_ok=lk["ok"], verdict=lk["verdict"], reason=lk.get("reason"),
                             shows=all(v["shows"] for v in lk["shows"].values()), stronger=rep_face.get("stronger")))
            r = rows[-1]
            sheets.setdefault((name, path.name, face_i), [crop_face(orig_im, lm)]).append((prompt, crop_face(prot, lm), r))
            print(f"{prompt:>32} | {name:>14} {path.name:>26} f{face_i if face_i is not None else 0} | before {before} | after {after} "
                  f"| jpeg75 {jpeg} | 0.5x {half} | control {ctl} | {secs:.1f} s, {r['steps']} steps | "
                  + " ".join(f"{k} {v:.1f}" for k, v in r["look"].items()) + f" | {lk['verdict']}"
                  + (f": {lk.get('reason')}" if lk["verdict"] != "natural" else ""), flush=True)
    (out / "protocol.json").write_text(json.dumps(rows, indent=1))
    ok = lambda v: v is not None and min(v) > DLIB_THRESHOLD
    n = len(rows)
    print(f"\nfaces x prompts: {n}; protected (every photo of the person > {DLIB_THRESHOLD}): {sum(ok(r['after']) for r in rows)}/{n}; "
          f"after JPEG 75: {sum(ok(r['jpeg75']) for r in rows)}/{n}; after 0.5x: {sum(ok(r['half']) for r in rows)}/{n}; "
          f"control (lambda_adv 0) still matches (< {DLIB_THRESHOLD}): {sum(r['control'] is not None and max(r['control']) < DLIB_THRESHOLD for r in rows)}/{n}; "
          f"seconds per face: median {np.median([r['seconds'] for r in rows]):.1f}, max {max(r['seconds'] for r in rows):.1f}")
    print(f"looks natural (every bare-skin bound held): {sum(r['look_ok'] for r in rows)}/{n}; asked-for product shows "
          f"(mean dE >= 8 on lips / lids): {sum(r['shows'] for r in rows)}/{n}")
    for (name, photo, face_i), (orig, *cells) in sheets.items():
        write_sheet(out / f"sheet_{name}_{Path(photo).stem}_{face_i or 0}.png", orig, cells)
    print(f"results in {out}")

def crop_face(im: Image.Image, lm) -> Image.Image:
    "The face's makeup canvas, at the photo's own resolution."
    x0, y0, w, h = face_canvas(lm, im.size)
    return im.crop((x0, y0, x0 + w, y0 + h))

def write_sheet(path: Path, orig: Image.Image, cells) -> None:
    "One row: the original face, then each prompt's result with dlib's distances and the look verdict under it."
    from PIL import ImageDraw
    W = 420
    scale = W / orig.width
    H = int(orig.height * scale)
    sheet = Image.new("RGB", (W * (1 + len(cells)), H + 44), "white")
    draw = ImageDraw.Draw(sheet)
    sheet.paste(orig.resize((W, H), Image.LANCZOS), (0, 0)); draw.text((6, H + 4), "original", fill="black")
    for i, (prompt, im, r) in enumerate(cells, 1):
        sheet.paste(im.resize((W, H), Image.LANCZOS), (W * i, 0))
        draw.text((W * i + 6, H + 4), prompt, fill="black")
        draw.text((W * i + 6, H + 22), f"dlib {min(r['after']) if r['after'] else float('nan'):.2f} | {r['verdict']}", fill="black")
    sheet.save(path)

if __name__ == "__main__":
    main()
