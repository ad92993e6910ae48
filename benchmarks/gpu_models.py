"""Throughput of each learned model on this machine's device: items per second.

Usage: .venv/bin/python benchmarks/gpu_models.py [--markdown OUT.md] [--device auto]
       [--seconds 2]

Runs every model the signals use, where ``--device`` (a ``matcher.device`` setting, see
matcher/accel.py) puts it, on generated inputs (scikit-image photos, drawn captions):

* SSCD (the descriptor signal's model) at batch 1, 32 and 128, frames per second;
* YuNet face detection on a 512 px frame, and dlib's face descriptor, faces per second;
* RapidOCR detection and recognition of a captioned frame, frames per second;
* MiniLM (the text signal), sentences per second in batches of 32;
* CLIP/SigLIP (the embedding signal) when ``REELWATCH_MATCHER__EMBEDDING__MODEL`` names one.

Each model is warmed up once (session creation, CUDA kernels), then run again and again for
``--seconds``. On a CPU the whole run takes well under two minutes, so the same script gives
the CPU figures. ``--markdown`` writes a Markdown fragment with the device's name, the date
and the command (``make bench`` appends it to its report). Not a test: nothing here asserts
a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402  (after the repository root is importable)
from PIL import Image, ImageDraw, ImageFont  # noqa: E402
from skimage import data as skdata  # noqa: E402

from benchmarks._machine import cpu_model  # noqa: E402
from matcher import accel  # noqa: E402
from reelwatch.settings import MatcherSettings, load_settings  # noqa: E402


def device_name(device: str) -> str:
    """The GPU's name when torch runs on one, else ``CPU: <model>, N cores``."""
    d = accel.parse_device(device)
    if d.kind != "cpu" and accel.torch_cuda_devices() > d.ordinal:
        import torch

        return f"GPU: {torch.cuda.get_device_name(d.ordinal)}"
    cpu = cpu_model()
    return f"CPU: {cpu}, {os.cpu_count()} cores"


def rate(run: Callable[[], int], seconds: float) -> float:
    """Items per second of ``run`` (which returns how many items it did), after one warm-up
    call, over repeated calls for at least ``seconds`` (and at least one call)."""
    run()
    done, start = 0, time.perf_counter()
    while True:
        done += run()
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed


def counted(fn: Callable[..., Any], *args: Any) -> Callable[[], int]:
    """A call of ``fn(*args)`` that returns how many items it made (its result's length)."""
    return lambda: len(fn(*args))


def frames(n: int, size: tuple[int, int] = (512, 288)) -> list[np.ndarray]:
    """``n`` frames of scikit-image photos at ``size``, each a little different."""
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea(), skdata.rocket()]
    out = []
    for i in range(n):
        img = Image.fromarray(photos[i % len(photos)]).convert("RGB")
        img = img.rotate((i % 7) - 3, Image.Resampling.BILINEAR).resize(size)
        out.append(np.asarray(img))
    return out


def captioned(size: tuple[int, int] = (512, 288)) -> np.ndarray:
    img = Image.fromarray(skdata.coffee()).convert("RGB").resize(size)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=26)
    for i, line in enumerate(("STARFALL STATION", "#starfallstation", "Directed by A. Person")):
        draw.text(
            (20, 30 + 50 * i),
            line,
            font=font,
            fill=(255, 255, 255),
            stroke_width=2,
            stroke_fill=(0, 0, 0),
        )
    return np.asarray(img)


def measure(device: str, seconds: float) -> list[tuple[str, str, str, float]]:
    """(model, input, batch, items per second) of every model that can run here."""
    rows: list[tuple[str, str, str, float]] = []
    settings = MatcherSettings(device=device)

    from matcher.signals.descriptor import SscdDescriptorSignal, describe

    descriptor = SscdDescriptorSignal(settings)
    if descriptor.unavailable() is None:
        s = settings.descriptor
        for batch in (1, 32, 128):
            images = frames(batch)
            bs = s.model_copy(update={"batch_size": batch})
            per_s = rate(counted(describe, images, bs, device), seconds)
            rows.append((f"SSCD ({s.model})", f"{s.image_size} px frames", str(batch), per_s))
            print(f"SSCD batch {batch}: {per_s:.1f} frames/s", flush=True)

    from matcher.signals.face import DlibFaceSignal

    face = DlibFaceSignal(settings)
    if face.unavailable() is None:
        frame = np.asarray(Image.fromarray(skdata.astronaut()).resize((512, 512)))

        def detect() -> int:
            face.detect(frame)
            return 1

        per_s = rate(detect, seconds)
        rows.append(("YuNet face detection", "512x512 frame (enlarged 2x)", "1", per_s))
        print(f"YuNet: {per_s:.1f} frames/s", flush=True)
        import dlib

        models, _ = face._models()
        img = np.ascontiguousarray(frame)
        shapes = dlib.full_object_detections()
        for (x0, y0, x1, y1), _score in face.detect(frame):
            shapes.append(models.shapes(img, dlib.rectangle(x0, y0, x1 - 1, y1 - 1)))
        if len(shapes):
            per_s = rate(counted(models.encoder.compute_face_descriptor, img, shapes), seconds)
            rows.append(("dlib face descriptor", "faces of one frame", str(len(shapes)), per_s))
            print(f"dlib descriptor: {per_s:.1f} faces/s", flush=True)

    from matcher.signals.ocr import RapidOcrSignal, read_frame

    if RapidOcrSignal(settings).unavailable() is None:
        text_frame = captioned()
        o = settings.ocr

        def read() -> int:
            read_frame(text_frame, o.upscale, o.threads, device)
            return 1

        per_s = rate(read, seconds)
        rows.append(("RapidOCR det + rec", f"512x288 frame read at {o.upscale:g}x", "1", per_s))
        print(f"RapidOCR: {per_s:.1f} frames/s", flush=True)

    from matcher.models import default_text_model, load_sentence_encoder

    folder = default_text_model()
    if folder is not None:
        encoder = load_sentence_encoder(str(folder), accel.torch_device("auto", device))
        words = ["starfall", "station", "the", "roastery", "cat", "coffee", "space", "opera"]
        rng = np.random.default_rng(0)
        sentences = [" ".join(rng.choice(words, 12)) for _ in range(256)]
        per_s = rate(counted(encoder.encode, sentences, 32), seconds)
        rows.append(("MiniLM (text)", "12-word sentences", "32", per_s))
        print(f"MiniLM: {per_s:.1f} sentences/s", flush=True)

    model = load_settings().matcher.embedding.model
    if model:
        from matcher.models import load_image_encoder, resolve_model_dir

        image_encoder = load_image_encoder(
            str(resolve_model_dir(model)), accel.torch_device("auto", device)
        )
        images = frames(64)
        per_s = rate(counted(image_encoder.encode, images, 32), seconds)
        rows.append((f"image encoder ({model})", "512x288 frames", "32", per_s))
        print(f"image encoder: {per_s:.1f} frames/s", flush=True)
    return rows


def markdown(
    rows: list[tuple[str, str, str, float]], device: str, command: str, started: str
) -> str:
    lines = [
        "## Models on one device",
        "",
        f"{started}, {device_name(device)}; `{command}`",
        "",
        accel.describe(device) + ".",
        "",
        "| model | input | batch | items/s |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [f"| {m} | {i} | {b} | {r:.1f} |" for m, i, b, r in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", type=Path, help="write the Markdown fragment here")
    parser.add_argument("--device", default=None, help="a matcher.device (default: settings)")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per model")
    args = parser.parse_args()
    device = args.device or load_settings().matcher.device
    command = " ".join([".venv/bin/python", "benchmarks/gpu_models.py", *sys.argv[1:]])
    started = time.strftime("%Y-%m-%d %H:%M")
    os.chdir(ROOT)
    print(f"{device_name(device)}; {accel.describe(device)}", flush=True)
    rows = measure(device, args.seconds)
    text = markdown(rows, device, command, started)
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
