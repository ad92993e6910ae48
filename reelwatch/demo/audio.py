"""Soundtracks for demo and test media: music, speech, mixes and audio-only files.

Infringers often keep a title's soundtrack and change everything else: the music of a trailer
under their own footage, a scene's audio under a reaction cam with their voice on top, a
song turned down and re-encoded small. These helpers build such posts from the clips of
:mod:`reelwatch.demo.media` so the audio signal is tested on what it must survive, with
real encoders and real (synthetic) speech rather than noise standing in for a voice.

Speech comes from Debian's ``espeak-ng``, which is small, offline and deterministic; it is the
only external program used here. Like :mod:`reelwatch.demo.media`, this module is part of the
pure core (no crawler/, matcher/, workers/ or triage/ imports) and everything is seeded.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import wave
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from matcher.decode import resample_audio
from reelwatch.demo.media import SAMPLE_RATE, Clip, melody
from reelwatch.errors import InputError

SENTENCES = (
    "Okay so you have to see this part, it is honestly the best scene of the whole thing.",
    "Wait for it. Wait for it. Did you see that? I cannot believe they did that.",
    "Like and follow for part two, I will post the rest of it tomorrow night.",
    "This is my reaction to the new episode and I have so many questions right now.",
)
"""Voice-over lines in the style of reaction and re-upload posts."""

_ESPEAK_TIMEOUT_S = 60.0


# Speech ------------------------------------------------------------------------------------


def speech(
    text: str,
    sample_rate: int = SAMPLE_RATE,
    *,
    voice: str = "en-us",
    words_per_minute: int = 165,
    pitch: int = 50,
) -> np.ndarray:
    """``text`` spoken by espeak-ng, as mono ``float32`` in [-1, 1] at ``sample_rate``.

    Real speech (formants, pitch contours, pauses) is what a voice-over puts on top of a
    soundtrack; white noise would overstate how hard the job is in some bands and understate
    it in others. Raises ``InputError`` when espeak-ng is not installed or fails, and for
    empty text.
    """
    if not text.strip():
        raise InputError("speech: no text to speak")
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise InputError("speech: espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="reelwatch-speech-") as tmp:
        wav = Path(tmp) / "speech.wav"
        cmd = [exe, "-w", str(wav), "-v", voice, "-s", str(words_per_minute), "-p", str(pitch)]
        try:
            # Text on stdin, never as an argument: a line starting with "-" is not an option.
            subprocess.run(
                [*cmd, "--stdin"],
                input=text.encode("utf-8"),
                capture_output=True,
                check=True,
                timeout=_ESPEAK_TIMEOUT_S,
            )
        except subprocess.CalledProcessError as exc:
            reason = exc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise InputError(
                f"speech: espeak-ng failed ({reason[-1] if reason else exc})"
            ) from None
        except subprocess.TimeoutExpired:
            raise InputError(f"speech: espeak-ng took over {_ESPEAK_TIMEOUT_S:.0f} s") from None
        samples, rate = _read_wav(wav)
    return resample(samples, rate, sample_rate)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of a 16-bit PCM WAV (what espeak-ng writes)."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise InputError(f"{path.name}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        channels, rate = w.getnchannels(), w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    audio = pcm.reshape(-1, channels).mean(axis=1) / 32768.0
    return audio.astype(np.float32), rate


def voice_over(
    seconds: float,
    sample_rate: int = SAMPLE_RATE,
    *,
    seed: int = 0,
    lines: tuple[str, ...] = SENTENCES,
    gap_s: float = 0.4,
) -> np.ndarray:
    """``seconds`` of continuous talking (mono), lines in a seeded order with short pauses.

    A reaction post talks over most of the clip; one short sentence would leave most of the
    soundtrack clean and make the test too easy.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    out = np.zeros(n, np.float32)
    gap = round(gap_s * sample_rate)
    spoken = {line: speech(line, sample_rate) for line in lines}
    pos = 0
    while pos < n:
        said = spoken[lines[int(rng.integers(len(lines)))]]
        take = min(len(said), n - pos)
        out[pos : pos + take] = said[:take]
        pos += take + gap
    return out


# Music -------------------------------------------------------------------------------------


def song(
    seconds: float, seed: int, sample_rate: int = SAMPLE_RATE, *, cue: int | None = None
) -> np.ndarray:
    """A seeded stereo track ``(2, n)``: the demo melody over a bass line and hi-hats.

    Richer than :func:`reelwatch.demo.media.melody` alone (low and high bands carry content,
    as in real soundtracks), and long ones are cheap, so tests can cut short excerpts from
    minutes of reference audio.

    ``cue`` makes another cue of the same soundtrack: same key, tempo and instruments (lead,
    bass, hi-hats), other notes and another bass line. It resembles the track without
    repeating any of it, as two scenes' music in one film does.
    """
    rng = np.random.default_rng(seed + 7919)
    n = round(seconds * sample_rate)
    lead = melody(seconds, seed, sample_rate, notes_seed=None if cue is None else seed * 1000 + cue)
    t = np.arange(n) / sample_rate
    beat = 60.0 / rng.uniform(90, 130)
    bass_root = 55.0 * 2 ** (rng.integers(0, 12) / 12)
    if cue is not None:
        rng = np.random.default_rng((seed, cue))
    steps = rng.choice([0, 3, 5, 7, 10], size=int(seconds / (4 * beat)) + 2)
    bar = np.minimum((t / (4 * beat)).astype(int), len(steps) - 1)
    freq = bass_root * 2.0 ** (steps[bar] / 12)
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate
    in_beat = np.mod(t, beat)
    bass = 0.18 * np.sin(phase) * np.exp(-2.0 * in_beat)
    noise = rng.standard_normal(n)
    hat_t = np.mod(t + beat / 2, beat)
    hats = 0.04 * np.diff(noise, prepend=0.0) * np.exp(-40.0 * hat_t)
    mono = (bass + hats).astype(np.float32)
    return np.clip(lead + mono[None], -1.0, 1.0).astype(np.float32)


# Mixing ------------------------------------------------------------------------------------


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """``(2, n)`` float32 from mono ``(n,)`` or ``(c, n)`` audio."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        return np.stack([a, a])
    if a.ndim != 2 or a.shape[0] < 1:
        raise ValueError(f"audio must be (n,) or (channels, n), got shape {a.shape}")
    return np.stack([a[0], a[1 if a.shape[0] > 1 else 0]])


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """Cut or zero-pad the last axis of ``audio`` to ``n`` samples."""
    if audio.shape[-1] >= n:
        return audio[..., :n]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, n - audio.shape[-1])]
    return np.pad(audio, pad)


def mix(base: np.ndarray, layer: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """``base`` with ``layer`` (mono or stereo, cut or padded to fit) added at ``gain``,
    clipped to [-1, 1]; the result has ``base``'s shape."""
    b = np.asarray(base, dtype=np.float32)
    lay = to_stereo(layer) if b.ndim == 2 else np.asarray(layer, np.float32).reshape(-1)
    if b.ndim == 2 and b.shape[0] != 2:
        raise ValueError("mix: a multi-channel base must be stereo (2, n)")
    return np.clip(b + gain * fit_length(lay, b.shape[-1]), -1.0, 1.0).astype(np.float32)


def with_soundtrack(
    clip: Clip,
    audio: np.ndarray,
    *,
    volume: float = 0.6,
    voice: np.ndarray | None = None,
    voice_volume: float = 1.0,
    start: float = 0.0,
    sample_rate: int = SAMPLE_RATE,
) -> Clip:
    """``clip`` with its sound replaced by ``audio`` from ``start`` s, at ``volume``, and
    ``voice`` (mono speech) on top at ``voice_volume``.

    This is the re-upload that keeps only the sound: a title's music under someone's own
    footage, turned down so a voice-over carries. ``audio`` is mono or ``(2, n)`` at
    ``sample_rate`` (resampled to the clip's rate when they differ); it is cut or padded
    to the clip's length.
    """
    n = round(clip.duration * clip.sample_rate)
    track = to_stereo(audio)
    if sample_rate != clip.sample_rate:
        track = np.stack([resample(ch, sample_rate, clip.sample_rate) for ch in track])
    a0 = round(start * clip.sample_rate)
    out = volume * fit_length(track[:, a0:], n)
    if voice is not None:
        v = np.asarray(voice, np.float32).reshape(-1)
        if sample_rate != clip.sample_rate:
            v = resample(v, sample_rate, clip.sample_rate)
        out = mix(out, v, voice_volume)
    return replace(clip, audio=np.clip(out, -1.0, 1.0).astype(np.float32))


def silent(clip: Clip) -> Clip:
    """``clip`` with an all-zero soundtrack (muted re-uploads exist; they must not match)."""
    return replace(clip, audio=np.zeros_like(clip.audio))


# Resampling and files ----------------------------------------------------------------------


def resample(audio: np.ndarray, rate: int, new_rate: int) -> np.ndarray:
    """Mono float32 ``audio`` from ``rate`` to ``new_rate`` (FFmpeg's resampler), exactly as
    long as the same duration at ``new_rate``."""
    out = resample_audio(audio, rate, new_rate)
    if rate == new_rate:
        return out
    return fit_length(out, round(np.asarray(audio).size * new_rate / rate))


def write_audio(
    audio: np.ndarray,
    out_path: Path,
    *,
    sample_rate: int = SAMPLE_RATE,
    bitrate: int = 128_000,
    mono: bool = False,
) -> Path:
    """Encode ``audio`` (mono or ``(2, n)``) as an audio-only AAC ``.m4a`` file.

    Audio-only files are catalog assets of kind ``audio`` (a title's score, a song), and a
    low ``bitrate`` with ``mono=True`` gives the small, smeared re-encodes that social apps
    and screen recorders make of a soundtrack.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    track = to_stereo(audio)
    if mono:
        track = track.mean(axis=0, keepdims=True)
    layout = "mono" if mono else "stereo"
    track = np.ascontiguousarray(np.clip(track, -1.0, 1.0), dtype=np.float32)
    tmp = out_path.with_name(out_path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        aus = container.add_stream("aac", rate=sample_rate)
        aus.layout = layout
        aus.bit_rate = bitrate
        for i in range(0, track.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(track[:, i : i + 1024]), format="fltp", layout=layout
            )
            af.sample_rate = sample_rate
            af.pts = i
            container.mux(aus.encode(af))
        container.mux(aus.encode(None))
    tmp.replace(out_path)
    return out_path


def write_video_only(clip: Clip, out_path: Path, *, crf: int = 23) -> Path:
    """Encode ``clip``'s frames as H.264 MP4 with no audio stream at all (a muted upload)."""
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    w, h = clip.size
    w, h = w - w % 2, h - h % 2
    tmp = out_path.with_name(out_path.name + ".part")
    with av.open(str(tmp), "w", format="mp4") as container:
        vs = container.add_stream("libx264", rate=Fraction(clip.fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": str(crf), "preset": "superfast"}
        for frame in clip.frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:h, :w]), format="rgb24")
            container.mux(vs.encode(vf))
        container.mux(vs.encode(None))
    tmp.replace(out_path)
    return out_path
