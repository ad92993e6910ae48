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

SET_VERSION = 4
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
BUILTIN_MARK = ".eval-builtin"
"""Written into a folder filled with the built-in titles: their music is generated from known
seeds, so only there can themes be re-created and other cues of a soundtrack be made."""

BUILTIN_FACES = {
    "gallery": ("obama.jpg", "obama3.jpg"),
    "probes": ("obama2.jpg",),
    "others": ("biden.jpg",),
}
"""The face_recognition sdist's test photos used by the built-in set: two photos of one person
as the talent's gallery, a third photo of them as a query, another person as a distractor.
Group photos are made from them (see :data:`GROUP_PHOTOS`)."""
GROUP_PHOTOS = {
    "gallery": ("group-obama3-biden.jpg", "obama3.jpg", "biden.jpg"),
    "probes": ("group-obama2-biden.jpg", "obama2.jpg", "biden.jpg"),
}
"""Group photos: the talent's photo beside another person's, the other person larger (a
co-star in front). In the gallery it replaces the talent's second photo alone, so the
talent's face must be told from the co-star's by the rest of the gallery; as a probe the
talent must be found although the largest face is someone else's."""
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
            (gallery, BUILTIN_FACES["gallery"][:1]),
            (probes / title / talent, BUILTIN_FACES["probes"]),
            (probes / "_others", BUILTIN_FACES["others"]),
        ):
            folder.mkdir(parents=True, exist_ok=True)
            for name in names:
                shutil.copyfile(faces / name, folder / name)
        for folder, (name, talent_photo, other) in (
            (gallery, GROUP_PHOTOS["gallery"]),
            (probes / title / talent, GROUP_PHOTOS["probes"]),
        ):
            group_photo(faces / talent_photo, faces / other, folder / name)
    (directory / "titles.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (directory / BUILTIN_MARK).write_text("built-in evaluation titles\n")


def group_photo(talent: Path, other: Path, out: Path, *, talent_share: float = 0.35) -> Path:
    """A two-person photo: ``other`` large on the left, ``talent`` smaller on the right (its
    height ``talent_share`` of the picture's), on a plain grey backdrop, as a JPEG."""
    big = Image.open(other).convert("RGB")
    small = Image.open(talent).convert("RGB")
    height = 720
    big = big.resize((round(big.width * height / big.height), height), Image.Resampling.LANCZOS)
    h = round(height * talent_share)
    small = small.resize((round(small.width * h / small.height), h), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (big.width + small.width + 40, height), (128, 128, 128))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width + 20, (height - h) // 3))
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out, format="JPEG", quality=90)
    return out


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
    "rotate +5°": ([partial(media.rotate, degrees=5.0)], 1.0),
    "rotate -5°": ([partial(media.rotate, degrees=-5.0)], 1.0),
    "crop 60%": ([partial(media.crop, fraction=0.6)], 1.0),
    "9:16 at 540x960": ([partial(media.letterbox_vertical, size=(540, 960))], 1.0),
}
"""Picture-in-picture and the soundtrack cases need a second clip and are made apart."""

PIP = "picture-in-picture"
BROKEN_AUDIO = "AVI with a broken audio track"
SOUNDTRACK = "soundtrack under other video, 60% + speech"
SOUNDTRACKS = {
    SOUNDTRACK: -3.0,
    "music 60% under speech at 0 dB": 0.0,
    "music 60% under speech +4 dB": 4.0,
}
"""Soundtrack families: the level of the voice-over relative to the music (60%), in dB."""
RECREATED = "re-created theme: +3 semitones, 0.9x tempo, other instrument"
RECREATED_NAMED = RECREATED + ", caption names the title"
BURNED_IN = "title burned into unrelated footage"
DISTRACTOR = "distractor"
SAME_SOUNDTRACK = "distractor: another cue of the title's soundtrack"
FACE = "face: another photo of the talent"
FACE_GROUP = "face: group photo, the talent smaller"
LEADS = {RECREATED: "medium", BURNED_IN: "low"}
"""Families whose only evidence is a lead, and the tier they are expected at: a re-created
melody is a medium lead; a title's name on screen over other footage names the title as a
caption does, a low lead (see docs/matching.md). Neither is high alone, by design."""


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
    expect: str = "high"
    """The tier a match of the right title should reach (``medium`` for lead families)."""


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
    if (directory / BUILTIN_MARK).exists():
        key += "-builtin"
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
        families = [*COPY_TRANSFORMS.items(), (PIP, ([], 1.0)), (BROKEN_AUDIO, ([], 1.0))]
        for name, (steps, speed) in families:
            start = float(rng.uniform(0, ref.duration - EXCERPT_S - 0.5))
            qid = f"q{len(queries):03d}"
            note(f"{qid} {ref.title}: {name}")
            if name == PIP:
                steps = [partial(_pip, background=distractor_clips[k % len(distractor_clips)])]
            clip = media.read_clip(ref.path, start, EXCERPT_S)
            for step in steps:
                clip = step(clip)
            if name == BROKEN_AUDIO:
                path = media.write_avi(clip, out / f"{qid}.avi", broken=["audio"])
            else:
                path = media.write_clip(clip, out / f"{qid}.mp4")
            caption, hashtags = caption_for(ref.title, k)
            k += 1
            queries.append(
                BuiltQuery(
                    qid,
                    path,
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
    # Soundtracks: 10 s of each reference's audio at 60% under unrelated video, a voice-over
    # below, as loud as, or louder than the music.
    for j, ref in enumerate(refs):
        if ref.duration < EXCERPT_S + 1:
            continue
        for family, voice_db in SOUNDTRACKS.items():
            start = float(rng.uniform(0, ref.duration - EXCERPT_S - 0.5))
            qid = f"q{len(queries):03d}"
            note(f"{qid} {ref.title}: {family}")
            track = _read_audio(ref.path, start, EXCERPT_S)
            picture = distractor_clips[(j + 2) % len(distractor_clips)]
            picture = media.excerpt(picture, 0.0, EXCERPT_S)
            voice = audio.voice_over(EXCERPT_S, seed=j)
            clip = audio.with_soundtrack(
                picture,
                track,
                volume=0.6,
                voice=voice,
                voice_volume=_voice_gain(track, voice, voice_db),
            )
            media.write_clip(clip, out / f"{qid}.mp4")
            queries.append(
                BuiltQuery(
                    qid,
                    out / f"{qid}.mp4",
                    family,
                    ref.title,
                    "",
                    (),
                    0.0,
                    EXCERPT_S,
                    round(start, 3),
                    round(start + EXCERPT_S, 3),
                )
            )
    # Built-in titles' music is generated, so it can be re-created (the tune in another key,
    # tempo and instrument) and answered by other cues of the same soundtrack.
    builtin = {t.name: t for t in BUILTIN_TITLES} if (directory / BUILTIN_MARK).exists() else {}
    for j, ref in enumerate(r for r in refs if r.title in builtin and r.talent is None):
        seed = builtin[ref.title].seed
        picture = media.excerpt(distractor_clips[(j + 3) % len(distractor_clips)], 0.0, EXCERPT_S)
        tune = media.melody(
            EXCERPT_S, seed, transpose=3, tempo=0.9, partials=(1.0, 0.6, 0.4, 0.25, 0.15)
        )
        named = ref.title in {r.title for r in refs if r.is_audio}
        family = RECREATED_NAMED if named else RECREATED
        qid = f"m{j:02d}"
        note(f"{qid} {ref.title}: {family}")
        media.write_clip(audio.with_soundtrack(picture, tune, volume=1.0), out / f"{qid}.mp4")
        caption, hashtags = (
            (f"{ref.title} theme but it's AI", tuple(tags.get(ref.title, [])[:1]))
            if named
            else ("", ())
        )
        queries.append(
            BuiltQuery(
                qid,
                out / f"{qid}.mp4",
                family,
                ref.title,
                caption,
                hashtags,
                0.0,
                EXCERPT_S,
                0.0,
                round(EXCERPT_S * 0.9, 3),
                expect="high" if named else LEADS[RECREATED],
            )
        )
        qid = f"c{j:02d}"
        note(f"{qid} {ref.title}: {SAME_SOUNDTRACK}")
        cue = audio.song(EXCERPT_S, seed, cue=1 + j)
        media.write_clip(audio.with_soundtrack(picture, cue, volume=0.8), out / f"{qid}.mp4")
        queries.append(
            BuiltQuery(qid, out / f"{qid}.mp4", SAME_SOUNDTRACK, None, "", (), 0.0, 0.0, 0.0, 0.0)
        )
    # Words on screen: a title's name drawn over footage that is not the title's.
    for j, name in enumerate(
        n for n in titles if any(r.title == n and not r.is_audio for r in refs)
    ):
        qid = f"t{j:02d}"
        note(f"{qid} {name}: {BURNED_IN}")
        picture = media.excerpt(distractor_clips[(j + 4) % len(distractor_clips)], 0.0, EXCERPT_S)
        media.write_clip(media.overlay_text(picture, name.upper(), stickers=0), out / f"{qid}.mp4")
        queries.append(
            BuiltQuery(
                qid, out / f"{qid}.mp4", BURNED_IN, name, "", (), 0.0, EXCERPT_S, 0.0, 0.0,
                expect=LEADS[BURNED_IN],
            )
        )  # fmt: skip
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
            family = FACE_GROUP if photo.name.startswith("group-") else FACE
            queries.append(BuiltQuery(qid, path, family, title, "", (), 0.0, FACE_CLIP_S, 0.0, 0.0))
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


def _voice_gain(track: np.ndarray, voice: np.ndarray, voice_db: float) -> float:
    """Gain that puts ``voice`` ``voice_db`` dB above the track at 60% (by RMS; negative is
    under it)."""
    music = float(np.sqrt(np.mean(np.square(0.6 * track)))) if track.size else 0.0
    speech = float(np.sqrt(np.mean(np.square(voice)))) if voice.size else 0.0
    if music <= 0.0 or speech <= 0.0:
        return 1.0
    return music / speech * 10 ** (voice_db / 20)


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
