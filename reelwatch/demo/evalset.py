"""A labelled evaluation set made from reference media: copies under known transformations,
soundtracks under other pictures, and distractors, each with the truth about it.

``reelwatch eval DIR`` reads references from ``DIR`` (one sub-folder per title, any media
inside; an optional ``titles.yaml`` gives owners, aliases, hashtags and descriptions). When
``DIR`` holds no media, :func:`write_builtin_references` fills it first with titles made from
scikit-image photos and generated music, so the evaluation runs anywhere, offline.

A title's actors go in ``DIR/<title>/faces/<talent name>/*.jpg`` (face assets: the talent's
gallery). Photos kept out of the galleries make face queries:
``DIR/.eval-probes/faces/<title>/<talent name>/*.jpg`` are *other* photos of a talent (each
becomes a clip that should name the title), ``DIR/.eval-probes/faces/_others/*.jpg`` are other
people (distractors). The built-in set has faces when ``make test-data`` has fetched the
photos of real people that the face_recognition package ships (``REELWATCH_TEST_FACES``).

Queries are written under ``DIR/.eval/queries`` and reused while their recipe (this module's
:data:`SET_VERSION` and the references' sizes) is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from reelwatch.demo import audio, media
from reelwatch.demo.media import Clip
from reelwatch.errors import InputError

SET_VERSION = 3
MEDIA_SUFFIXES = frozenset(
    {".mp4", ".mov", ".mkv", ".webm", ".m4v", ".avi", ".jpg", ".jpeg", ".png", ".webp"}
    | {".wav", ".m4a", ".mp3", ".aac", ".flac", ".ogg", ".opus"}
)
AUDIO_SUFFIXES = frozenset({".wav", ".m4a", ".mp3", ".aac", ".flac", ".ogg", ".opus"})

EXCERPT_S = 10.0
"""Length of each copied stretch (in reference seconds)."""


@dataclass(frozen=True)
class _BuiltinTitle:
    name: str
    owner: str
    aliases: tuple[str, ...]
    hashtags: tuple[str, ...]
    description: str
    photos: tuple[str, ...]
    seed: int
    theme_only: bool = False
    """Only a soundtrack (an audio asset): the title's theme music."""


BUILTIN_TITLES: tuple[_BuiltinTitle, ...] = (
    _BuiltinTitle(
        "Starfall Station",
        "Northlight Studios",
        ("Starfall",),
        ("starfallstation",),
        "A crew races to relaunch a derelict orbital station before the solar storm hits.",
        ("astronaut", "rocket", "hubble_deep_field", "moon"),
        11,
    ),
    _BuiltinTitle(
        "The Roastery",
        "Northlight Studios",
        ("Roastery",),
        ("theroastery",),
        "Three siblings inherit a failing coffee roastery and one very old clock.",
        ("coffee", "clock", "brick", "cell"),
        21,
    ),
    _BuiltinTitle(
        "Whiskers of Bridgemoor",
        "Northlight Studios",
        ("Bridgemoor",),
        ("bridgemoor",),
        "An animated tale of a tabby who guards the last bridge across the moor.",
        ("chelsea", "grass", "gravel", "retina"),
        31,
    ),
    _BuiltinTitle(
        "Harbor Lights",
        "Northlight Studios",
        (),
        ("harborlights",),
        "The theme song of a seaside drama.",
        (),
        41,
        theme_only=True,
    ),
)

DISTRACTOR_PHOTOS: tuple[tuple[str, ...], ...] = (
    ("camera",),
    ("coins", "page"),
    ("stereo_motorcycle",),
    ("immunohistochemistry",),
    ("colorwheel", "logo"),
    ("horse", "text"),
    ("microaneurysms",),
    ("shepp_logan_phantom", "checkerboard"),
)

REFERENCE_SECONDS = 32.0
FACE_CLIP_S = 6.0
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
PROBES = ".eval-probes"

BUILTIN_FACES = {
    "gallery": ("obama.jpg", "obama3.jpg"),
    "probes": ("obama2.jpg",),
    "others": ("biden.jpg",),
}
"""The face_recognition sdist's test photos used by the built-in set: two photos of one person
as the talent's gallery, a third photo of them as a query, another person as a distractor."""
BUILTIN_TALENT = ("Starfall Station", "Talent A")


def face_photos_dir() -> Path | None:
    """Where ``make test-data`` put the photos of real people, if it did."""
    d = Path(os.environ.get("REELWATCH_TEST_FACES") or Path(".venv") / "test-data" / "faces")
    return d if all((d / n).exists() for names in BUILTIN_FACES.values() for n in names) else None


def write_builtin_references(directory: Path) -> None:
    """Fill ``directory`` with the built-in titles: a 32 s clip of Ken Burns moves over four
    scikit-image photos with a generated song per title, and one title known only by its
    theme music (an audio asset). Writes ``titles.yaml`` with their catalog fields."""
    directory.mkdir(parents=True, exist_ok=True)
    meta: dict[str, dict[str, object]] = {}
    for t in BUILTIN_TITLES:
        folder = directory / t.name
        folder.mkdir(exist_ok=True)
        if t.theme_only:
            audio.write_audio(audio.song(REFERENCE_SECONDS, t.seed), folder / "theme.m4a")
        else:
            clip_path = folder / "reference.mp4"
            media.make_reference_clip(
                t.photos,
                clip_path,
                seconds_per_photo=REFERENCE_SECONDS / len(t.photos),
                seed=t.seed,
            )
            clip = media.read_clip(clip_path)
            song = audio.song(clip.duration, t.seed)
            media.write_clip(audio.with_soundtrack(clip, song, volume=1.0), clip_path)
        meta[t.name] = {
            "owner": t.owner,
            "aliases": list(t.aliases),
            "hashtags": list(t.hashtags),
            "description": t.description,
        }
    faces = face_photos_dir()
    if faces is not None:
        title, talent = BUILTIN_TALENT
        gallery = directory / title / "faces" / talent
        probes = directory / PROBES / "faces"
        for folder, names in (
            (gallery, BUILTIN_FACES["gallery"]),
            (probes / title / talent, BUILTIN_FACES["probes"]),
            (probes / "_others", BUILTIN_FACES["others"]),
        ):
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copyfile(faces / name, folder / name)
    (directory / "titles.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))


@dataclass(frozen=True)
class Reference:
    title: str
    path: Path
    is_audio: bool
    duration: float
    talent: str | None = None
    """Set for photos of an actor (face assets)."""

    @property
    def kind(self) -> str:
        return "face" if self.talent else "auto"


def find_references(directory: Path) -> tuple[dict[str, dict[str, object]], list[Reference]]:
    """Titles (catalog fields from ``titles.yaml``) and reference files found in ``directory``:
    each sub-folder is a title named after it; files at the top level are titles of their own
    (named after the file)."""
    meta_path = directory / "titles.yaml"
    meta: dict[str, dict[str, object]] = {}
    if meta_path.exists():
        try:
            loaded = yaml.safe_load(meta_path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{meta_path}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise InputError(f"{meta_path}: expected a mapping of title name to fields")
        meta = {str(k): dict(v or {}) for k, v in loaded.items()}
    refs: list[Reference] = []
    for entry in sorted(directory.iterdir()):
        if entry.name.startswith("."):
            continue
        files = sorted(entry.iterdir()) if entry.is_dir() else [entry]
        title = entry.name if entry.is_dir() else entry.stem
        faces = entry / "faces"
        if faces.is_dir():
            for person in sorted(p for p in faces.iterdir() if p.is_dir()):
                for photo in sorted(person.iterdir()):
                    if photo.suffix.lower() in PHOTO_SUFFIXES:
                        refs.append(Reference(title, photo, False, 0.0, talent=person.name))
            meta.setdefault(title, {})
        for f in files:
            if f.suffix.lower() not in MEDIA_SUFFIXES or not f.is_file():
                continue
            has_video, duration = _probe(f)
            is_audio = f.suffix.lower() in AUDIO_SUFFIXES or not has_video
            refs.append(Reference(title, f, is_audio, duration))
            meta.setdefault(title, {})
    allowed = {"owner", "aliases", "hashtags", "description"}
    titles = {
        name: {k: v for k, v in fields.items() if k in allowed} for name, fields in meta.items()
    }
    return {t: f for t, f in titles.items() if any(r.title == t for r in refs)}, refs


# Transformations of a copied excerpt: name -> (Clip -> Clip, speed factor) ------------------


def _pip(clip: Clip, background: Clip) -> Clip:
    return media.picture_in_picture(clip, background, scale=0.5, position="top-right")


def _text(clip: Clip) -> Clip:
    return media.overlay_stickers(media.overlay_text(clip, "WAIT FOR IT", stickers=0), 4, seed=3)


COPY_TRANSFORMS: dict[str, tuple[list[Callable[[Clip], Clip]], float]] = {
    "excerpt": ([], 1.0),
    "crop 80%": ([partial(media.crop, fraction=0.8)], 1.0),
    "mirror": ([media.mirror], 1.0),
    "letterbox 9:16": ([media.letterbox_vertical], 1.0),
    "text + emoji overlay": ([_text], 1.0),
    "speed 1.25x": ([partial(media.change_speed, factor=1.25)], 1.25),
    "slow 0.8x": ([partial(media.change_speed, factor=0.8)], 0.8),
    "fps 24 -> 15": ([partial(media.change_fps, fps=15.0)], 1.0),
    "heavy re-encode": ([media.heavy_reencode], 1.0),
    "mirror + crop + letterbox": (
        [media.mirror, partial(media.crop, fraction=0.85), media.letterbox_vertical],
        1.0,
    ),
}
"""Picture-in-picture and the soundtrack cases need a second clip and are made apart."""

PIP = "picture-in-picture"
SOUNDTRACK = "soundtrack under other video, 60% + speech"
DISTRACTOR = "distractor"
FACE = "face: another photo of the talent"


@dataclass(frozen=True)
class BuiltQuery:
    id: str
    path: Path
    transform: str
    title: str | None
    caption: str
    hashtags: tuple[str, ...]
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float


def _face_probes(directory: Path) -> list[tuple[str | None, str | None, Path]]:
    """(title, talent, photo) of held-out face photos; title ``None`` for other people."""
    root = directory / PROBES / "faces"
    out: list[tuple[str | None, str | None, Path]] = []
    if not root.is_dir():
        return out
    for entry in sorted(root.iterdir()):
        if entry.name == "_others":
            out += [(None, None, p) for p in sorted(entry.iterdir())]
        elif entry.is_dir():
            for person in sorted(p for p in entry.iterdir() if p.is_dir()):
                out += [(entry.name, person.name, p) for p in sorted(person.iterdir())]
    return [o for o in out if o[2].suffix.lower() in PHOTO_SUFFIXES]


def _recipe_key(refs: list[Reference], probes: list[tuple[str | None, str | None, Path]]) -> str:
    h = hashlib.sha256(f"v{SET_VERSION}".encode())
    for r in refs:
        h.update(f"{r.title}|{r.path.name}|{r.path.stat().st_size}".encode())
    for _, _, p in probes:
        h.update(f"{p.name}|{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def build_queries(
    directory: Path,
    refs: list[Reference],
    titles: dict[str, dict[str, object]],
    progress: Callable[[str], None] | None = None,
    *,
    distractors: int = len(DISTRACTOR_PHOTOS),
) -> list[BuiltQuery]:
    """Write (or reuse) the queries for ``refs`` under ``directory/.eval/queries``.

    ``distractors`` unrelated source clips (at most :data:`DISTRACTOR_PHOTOS`) each give a
    plain and an edited distractor post."""
    out = directory / ".eval" / "queries"
    manifest = out / "queries.json"
    probes = _face_probes(directory)
    n_distractors = max(1, min(distractors, len(DISTRACTOR_PHOTOS)))
    key = _recipe_key(refs, probes) + f"-d{n_distractors}"
    if manifest.exists():
        try:
            data = json.loads(manifest.read_text())
            if data.get("key") == key:
                return [
                    BuiltQuery(**{**q, "path": out / q["path"], "hashtags": tuple(q["hashtags"])})
                    for q in data["queries"]
                ]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2022)
    queries: list[BuiltQuery] = []
    tags = {t: _str_list(f.get("hashtags")) for t, f in titles.items()}

    def caption_for(title: str, k: int) -> tuple[str, tuple[str, ...]]:
        """A third of the copies name their title, as fans do; the rest say nothing useful."""
        if k % 3 == 0:
            return f"{title} best scene", (*tags.get(title, [])[:1], "fyp")
        return ("you have to see this", ("fyp", "viral")) if k % 3 == 1 else ("", ())

    def note(msg: str) -> None:
        if progress is not None:
            progress(msg)

    distractor_clips = _distractor_clips(out, n_distractors)
    videos = [r for r in refs if not r.is_audio and r.duration >= EXCERPT_S + 1]
    k = 0
    for ref in videos:
        # Picture-in-picture comes last: its window sits over one of the distractor clips.
        for name, (steps, speed) in [*COPY_TRANSFORMS.items(), (PIP, ([], 1.0))]:
            start = float(rng.uniform(0, ref.duration - EXCERPT_S - 0.5))
            qid = f"q{len(queries):03d}"
            note(f"{qid} {ref.title}: {name}")
            if name == PIP:
                steps = [partial(_pip, background=distractor_clips[k % len(distractor_clips)])]
            clip = media.read_clip(ref.path, start, EXCERPT_S)
            for step in steps:
                clip = step(clip)
            media.write_clip(clip, out / f"{qid}.mp4")
            caption, hashtags = caption_for(ref.title, k)
            k += 1
            queries.append(
                BuiltQuery(
                    qid,
                    out / f"{qid}.mp4",
                    name,
                    ref.title,
                    caption,
                    hashtags,
                    0.0,
                    round(EXCERPT_S / speed, 3),
                    round(start, 3),
                    round(start + EXCERPT_S, 3),
                )
            )
    # Soundtracks: 10 s of each reference's audio at 60% under unrelated video, speech on top.
    for j, ref in enumerate(refs):
        if ref.duration < EXCERPT_S + 1:
            continue
        start = float(rng.uniform(0, ref.duration - EXCERPT_S - 0.5))
        qid = f"q{len(queries):03d}"
        note(f"{qid} {ref.title}: {SOUNDTRACK}")
        track = _read_audio(ref.path, start, EXCERPT_S)
        picture = distractor_clips[(j + 2) % len(distractor_clips)]
        picture = media.excerpt(picture, 0.0, EXCERPT_S)
        voice = audio.voice_over(EXCERPT_S, seed=j)
        clip = audio.with_soundtrack(
            picture, track, volume=0.6, voice=voice, voice_volume=_voice_gain(track, voice)
        )
        media.write_clip(clip, out / f"{qid}.mp4")
        queries.append(
            BuiltQuery(
                qid,
                out / f"{qid}.mp4",
                SOUNDTRACK,
                ref.title,
                "",
                (),
                0.0,
                EXCERPT_S,
                round(start, 3),
                round(start + EXCERPT_S, 3),
            )
        )
    # Faces: another photo of a talent, or of someone else, filmed over a few seconds.
    for j, (title, talent, photo) in enumerate(probes):
        qid = f"f{j:02d}"
        note(f"{qid}: face of {talent or 'someone else'}")
        path = out / f"{qid}.mp4"
        media.write_clip(portrait_clip(photo, FACE_CLIP_S, seed=900 + j), path)
        if title is None:
            queries.append(
                BuiltQuery(qid, path, DISTRACTOR + " (face)", None, "", (), 0.0, 0.0, 0.0, 0.0)
            )
        else:
            queries.append(BuiltQuery(qid, path, FACE, title, "", (), 0.0, FACE_CLIP_S, 0.0, 0.0))
    # Distractors: unrelated clips with their own music, plain and edited like the copies;
    # some carry a title's hashtag, as fan posts about a show do.
    title_names = list(titles)
    edits: dict[str, list[Callable[[Clip], Clip]]] = {
        "plain": [],
        "edited": [media.letterbox_vertical, _text],
    }
    for j, clip in enumerate(distractor_clips):
        for variant, steps in edits.items():
            qid = f"d{j:02d}{variant[0]}"
            note(f"{qid}: {DISTRACTOR} ({variant})")
            c = clip
            for step in steps:
                c = step(c)
            media.write_clip(c, out / f"{qid}.mp4")
            fan = title_names[j % len(title_names)] if title_names and j % 2 == 0 else None
            hashtags = tuple(tags.get(fan, [])[:1]) if fan else ("fyp",)
            caption = f"my {fan} theory" if fan else "weekend vibes"
            queries.append(
                BuiltQuery(
                    qid, out / f"{qid}.mp4", DISTRACTOR, None, caption, hashtags, 0.0, 0.0, 0.0, 0.0
                )
            )
    manifest.write_text(
        json.dumps(
            {
                "key": key,
                "queries": [{**asdict(q), "path": q.path.name} for q in queries],
            },
            indent=1,
        )
    )
    return queries


def portrait_clip(
    photo: Path, seconds: float, *, seed: int, fps: int = 24, size: tuple[int, int] = (640, 360)
) -> Clip:
    """A person's photo whole (fit to the frame height, over a blurred copy of itself) with a
    slow push-in, as a clip with its own music: an actor filmed in a scene."""
    from PIL import ImageFilter

    img = Image.open(photo).convert("RGB")
    back = img.resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(12))
    n = round(seconds * fps)
    frames = []
    for k in range(n):
        zoom = 0.9 + 0.08 * k / max(1, n - 1)
        h = round(size[1] * zoom)
        w = round(img.width * h / img.height)
        canvas = back.copy()
        canvas.paste(
            img.resize((w, h), Image.Resampling.BILINEAR), ((size[0] - w) // 2, (size[1] - h) // 2)
        )
        frames.append(np.asarray(canvas))
    return Clip(tuple(frames), float(fps), audio.song(n / fps, seed))


SPEECH_UNDER_MUSIC_DB = 3.0
"""The voice-over of soundtrack queries sits this far below the (60 %) music, by RMS."""


def _voice_gain(track: np.ndarray, voice: np.ndarray) -> float:
    """Gain that puts ``voice`` :data:`SPEECH_UNDER_MUSIC_DB` under the track at 60 %."""
    music = float(np.sqrt(np.mean(np.square(0.6 * track)))) if track.size else 0.0
    speech = float(np.sqrt(np.mean(np.square(voice)))) if voice.size else 0.0
    if music <= 0.0 or speech <= 0.0:
        return 1.0
    return music / speech * 10 ** (-SPEECH_UNDER_MUSIC_DB / 20)


def _str_list(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def _distractor_clips(out: Path, n: int) -> list[Clip]:
    """``n`` unrelated 12 s clips (photos no built-in title uses, their own songs)."""
    clips = []
    for j, photos in enumerate(DISTRACTOR_PHOTOS[:n]):
        path = out / f"distractor-source-{j}.mp4"
        if not path.exists():
            media.make_reference_clip(
                photos, path, seconds_per_photo=12.0 / len(photos), seed=500 + j
            )
            clip = media.read_clip(path)
            media.write_clip(
                audio.with_soundtrack(clip, audio.song(clip.duration, 500 + j), volume=1.0), path
            )
        clips.append(media.read_clip(path))
    return clips


def _probe(path: Path) -> tuple[bool, float]:
    """(has a video stream, duration in seconds); ``InputError`` for what is not media."""
    import av

    if path.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"}:
        return True, 0.0
    try:
        with av.open(str(path)) as c:
            duration = c.duration / av.time_base if c.duration else 0.0
            return bool(c.streams.video), float(duration)
    except (av.FFmpegError, OSError) as exc:
        raise InputError(f"{path.name}: not a media file ({exc})") from None


def _read_audio(path: Path, start: float, seconds: float) -> np.ndarray:
    """``seconds`` of a file's soundtrack from ``start``: stereo float32 at the demo rate."""
    import av

    rate = media.SAMPLE_RATE
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as c:
        if not c.streams.audio:
            raise InputError(f"{path.name}: no soundtrack")
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=rate)
        need = round((start + seconds) * rate)
        got = 0
        for frame in c.decode(c.streams.audio[0]):
            for rf in resampler.resample(frame):
                chunks.append(rf.to_ndarray())
                got += chunks[-1].shape[1]
            if got >= need:
                break
    track = np.concatenate(chunks, axis=1) if chunks else np.zeros((2, 0), np.float32)
    a0 = round(start * rate)
    return audio.fit_length(track[:, a0 : a0 + round(seconds * rate)], round(seconds * rate))
