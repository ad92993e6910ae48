"""The Signal contract: one small plugin per kind of evidence (copy, face, audio, text...).

How to add a signal
-------------------
1. Subclass :class:`Signal` in ``matcher/signals/<kind>.py``. Name the class
   ``<Technique><Kind>Signal`` (``PdqCopySignal``, ``LandmarkAudioSignal``): the signal's
   :attr:`~Signal.name` is the lower-cased word before ``Signal`` (``copy``, ``audio``), and it
   is the key of the signal in match reports, fingerprint caches and catalog indexes.
2. Keep it stateless: configuration comes from :class:`~reelwatch.settings.MatcherSettings`,
   data lives in the fingerprints it returns and the :class:`SignalIndex` it builds. Bump
   :attr:`~Signal.version` whenever fingerprints change meaning; caches and catalog indexes
   made by another version are rebuilt, never mixed.
3. Implement :meth:`~Signal.fingerprint` (from one :class:`~matcher.decode.Decoded`, so media
   is decoded once for all signals; set :attr:`~Signal.needs_audio` to get the soundtrack),
   a :class:`SignalIndex` subclass named in :attr:`~Signal.index_type`,
   :meth:`~Signal.search` (query fingerprint -> time-aligned :class:`SignalHit` per
   reference) and :meth:`~Signal.score` (hits of one title -> calibrated evidence in [0, 1]).
4. Signals about words rather than pixels (``text``) set :attr:`~Signal.references` to
   ``"titles"``: the catalog indexes each title's card (:meth:`~Signal.fingerprint_text` of
   its names, hashtags and description) under the title's number, and the engine
   fingerprints the post's caption and hashtags the same way at match time (captions differ
   between reposts of one video, so they never enter the media fingerprint cache).
5. A signal that cannot run here (no model configured, a missing optional package) says why
   in :meth:`~Signal.unavailable`; it is then left out and reported as off, never faked.
6. Register the class in ``SIGNALS`` in ``matcher/signals/__init__.py`` (names must be
   unique; import fails otherwise) and add it to the contract tests in
   ``tests/matcher/test_signal_contract.py``, which every signal runs.
"""

from __future__ import annotations

import math
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np

from matcher.decode import Decoded
from reelwatch.models import AssetKind
from reelwatch.settings import MatcherSettings

Fingerprint = dict[str, np.ndarray]
"""A signal's fingerprint of one media file: named arrays, so it caches as one ``.npz``."""

Role = Literal["query", "reference"]
"""References (catalog assets) and queries (posts) may be fingerprinted differently: the copy
signal stores crop variants of references and tries mirrors and content regions of queries."""


ASSET_SHIFT = 24
"""FAISS ids of per-asset index entries are ``asset_num << 24 | row``: an asset holds up to
16M entries, and ids decode to assets without a lookup table."""


def entry_ids(asset_num: int, rows: int | np.ndarray) -> np.ndarray:
    """FAISS ids of an asset's entries: ``rows`` (a count, or the row numbers themselves)."""
    r = np.arange(rows, dtype=np.int64) if isinstance(rows, int) else rows.astype(np.int64)
    return (np.int64(asset_num) << ASSET_SHIFT) + r


def split_ids(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(asset numbers, rows) of FAISS ids made by :func:`entry_ids`."""
    return ids >> ASSET_SHIFT, ids & ((1 << ASSET_SHIFT) - 1)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically: readers (and a crash) see the old file or the
    new one, never half of one. The temporary name is unique (not just the pid, which
    processes on two machines sharing the folder can have alike), so two writers never share
    it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    tmp.replace(path)


def save_per_asset(
    path: Path,
    per_asset: Mapping[int, Mapping[str, np.ndarray]],
    extra: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write named arrays of each asset (``a<num>_<name>``) and ``extra`` ones as one
    ``.npz``, atomically (:func:`write_npz`)."""
    arrays: dict[str, np.ndarray] = dict(extra or {})
    for num, named in per_asset.items():
        for name, array in named.items():
            arrays[f"a{num}_{name}"] = array
    write_npz(path, arrays)


def load_per_asset(data: Any) -> dict[int, dict[str, np.ndarray]]:
    """The named arrays of each asset in an ``.npz`` written by :func:`save_per_asset`, by
    asset number (rising)."""
    out: dict[int, dict[str, np.ndarray]] = {}
    for key in data.files:
        found = re.fullmatch(r"a(\d+)_(\w+)", key)
        if found:
            out.setdefault(int(found[1]), {})[found[2]] = data[key]
    return dict(sorted(out.items()))


Box = tuple[int, int, int, int]
"""x0, y0, x1, y1 in pixels of the decoded frame."""

TALENT = "talent"
"""Fingerprint key the catalog adds when it indexes an asset of a talent (the talent id as
UTF-8 bytes, :func:`talent_array`): indexes that calibrate on impostors tell a talent's own
photos from other people's by it. It is never part of a cached fingerprint."""


def talent_array(talent_id: str) -> np.ndarray:
    return np.frombuffer(talent_id.encode(), np.uint8).copy()


def talent_of(fingerprint: Fingerprint) -> str | None:
    """The talent id the catalog put in ``fingerprint``, if any."""
    raw = fingerprint.get(TALENT)
    return bytes(raw.astype(np.uint8)).decode() if raw is not None and len(raw) else None


@dataclass(frozen=True)
class TextInput:
    """Words to match: a post's caption and hashtags, or a title's card.

    ``names`` are exact names worth a rule match (a title's name and aliases; empty for a
    post), ``hashtags`` are normalised (lower case, no ``#``).
    """

    text: str = ""
    hashtags: tuple[str, ...] = ()
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class SignalHit:
    """A stretch of the query that one signal aligned with a stretch of one reference asset.

    ``asset_num`` is the catalog number of the reference asset, or of the title for signals
    whose :attr:`~Signal.references` are titles. ``query_time``/``ref_time``/``query_frame``
    point at the closest pair of frames inside the stretch, which the engine turns into
    evidence thumbnails (``query_frame`` is -1 when there is no frame, as for audio and text);
    ``query_box``/``ref_box`` outline what matched inside those frames (a face),
    ``note`` says in words what matched ("caption names 'Bridgerton'") and ``strip`` how
    closely each sampled moment of the stretch matched (see :meth:`Signal.closeness`).
    """

    asset_num: int
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    distance: float
    frames: int
    density: float
    query_time: float
    ref_time: float
    query_frame: int
    slope: float = 1.0
    query_box: Box | None = None
    ref_box: Box | None = None
    note: str = ""
    strip: tuple[float, ...] = ()
    """Distance of the closest pair at each sampled query time across the stretch (NaN where
    nothing on its time line matched), for the evidence strip; empty when not tracked."""


IndexKind = Literal["exact", "approximate"]
"""How a catalog index searches (``MatcherSettings.index``): ``exact`` compares every entry,
``approximate`` only the entries in the inverted lists (IVF) nearest the query."""

APPROXIMATE_MIN_ENTRIES = 4096
"""Below this many entries an index stays exact whatever ``MatcherSettings.index`` says:
k-means has too few points to train on, and a flat scan of a few thousand entries costs
less than the coarse quantizer it would replace."""

IVF_TRAIN_PER_LIST = 32
"""Training points per k-means centroid at most, and entries per inverted list at least."""

IVF_REGROW = 4
"""An approximate index is trained again when its size calls for this many times the lists
it has: its lists grew long, and its centroids describe what was indexed then."""


def ivf_lists(entries: int, per_list: int | None = None) -> int:
    """Inverted lists for an approximate index of ``entries``: ``entries / per_list`` when
    given, else FAISS's rule of thumb ``4 * sqrt(n)`` (4000 at a million); at least
    :data:`IVF_TRAIN_PER_LIST` entries a list, so every centroid has points to train on, and
    at least 16 lists."""
    wanted = entries // per_list if per_list else round(4 * math.sqrt(entries))
    return max(16, min(wanted, entries // IVF_TRAIN_PER_LIST))


def ivf_sample(entries: int, nlist: int) -> np.ndarray:
    """Sorted positions of the entries k-means trains on (:data:`IVF_TRAIN_PER_LIST` a list
    at most; the same positions for the same sizes)."""
    rng = np.random.default_rng(0)
    n = min(entries, nlist * IVF_TRAIN_PER_LIST)
    return np.sort(rng.choice(entries, n, replace=False))


def ivf_centroids(train: np.ndarray, nlist: int, *, spherical: bool) -> np.ndarray:
    """``nlist`` k-means centroids of the float32 rows ``train``.

    Two-level k-means (FAISS's ``two_level_clustering``: ``sqrt(nlist)`` coarse clusters,
    then each split in proportion to its points) costs ``sqrt(nlist)`` times less than one
    k-means over all centroids, which at 4000 lists is minutes against seconds. ``spherical``
    keeps centroids on the unit sphere, for inner-product indexes.
    """
    from faiss.contrib.clustering import two_level_clustering

    coarse = max(1, min(nlist, round(math.sqrt(nlist))))
    centroids, _ = two_level_clustering(
        np.ascontiguousarray(train, dtype=np.float32),
        coarse,
        nlist,
        clustering_niter=10,
        spherical=spherical,
        seed=1234,
        min_points_per_centroid=1,
    )
    return np.ascontiguousarray(centroids, dtype=np.float32)


def ivf_contents(ivf: Any, codes: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(codes, ids) of every entry in the inverted lists of an IVF index (float or binary),
    in list order: codes as ``uint8`` rows of the lists' code size (none when ``codes`` is
    false)."""
    import faiss

    lists = ivf.invlists
    size = lists.code_size if codes else 0
    code_parts: list[np.ndarray] = [np.zeros((0, size), np.uint8)]
    id_parts: list[np.ndarray] = [np.zeros(0, np.int64)]
    for number in range(ivf.nlist):
        n = lists.list_size(number)
        if n:
            id_parts.append(faiss.rev_swig_ptr(lists.get_ids(number), n).astype(np.int64))
            if codes:
                raw = faiss.rev_swig_ptr(lists.get_codes(number), n * size)
                code_parts.append(np.array(raw, np.uint8).reshape(n, size))
    return np.concatenate(code_parts), np.concatenate(id_parts)


class SignalIndex(ABC):
    """Reference fingerprints of the catalog, keyed by integer asset numbers.

    Adding and removing are incremental (adding one asset never rebuilds the rest); ``save``
    and ``load`` persist it under a folder the catalog owns.
    """

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> Self:
        """The index saved under ``directory`` by :meth:`save` (empty if none was)."""

    @abstractmethod
    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        """Index one asset's reference fingerprint; returns how many entries were added."""

    @abstractmethod
    def remove(self, asset_nums: Iterable[int]) -> int:
        """Drop these assets; returns how many entries were removed."""

    @abstractmethod
    def asset_nums(self) -> set[int]:
        """Assets present in the index."""

    @abstractmethod
    def __len__(self) -> int:
        """Number of indexed entries (e.g. frame hashes)."""

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Persist atomically under ``directory``."""

    def kind(self) -> IndexKind:
        """How the index searches now: ``exact`` unless :meth:`settle` made it approximate."""
        return "exact"

    def target_kind(self, wanted: IndexKind) -> IndexKind:
        """The kind :meth:`settle` makes of this index when ``MatcherSettings.index`` is
        ``wanted``: always ``exact`` for indexes without an approximate form (all but the
        copy and descriptor indexes) and below :data:`APPROXIMATE_MIN_ENTRIES` entries."""
        return "exact"

    def settle(self, wanted: IndexKind) -> bool:
        """Re-make the index as :meth:`target_kind` says, training an approximate one on the
        entries present; returns whether anything changed. The catalog calls it before each
        save, so a build trains on the whole catalog and later adds go into trained lists."""
        return False


class RowsIndex(SignalIndex):
    """A FAISS index whose entries are rows of per-asset arrays, with ids from
    :func:`entry_ids` and each row's reference time in ``times[asset_num]``.

    Subclasses set ``index`` (a FAISS index with ``remove_ids``, or ``None`` while empty) and
    fill ``times`` in :meth:`add`; removing, counting and reference lengths come from here.
    Side data kept per asset besides ``times`` is dropped in :meth:`_forget`.

    Subclasses with an approximate form set :attr:`APPROXIMATE` and implement
    :meth:`_remake` (and :meth:`list_count`, how many lists suit a size); when to re-make
    (:meth:`settle`) is decided here: an index turns approximate from
    :data:`APPROXIMATE_MIN_ENTRIES` entries, is trained again once its size calls for
    :data:`IVF_REGROW` times the lists it has, and turns exact again only when the setting
    says so.
    """

    index: Any
    times: dict[int, np.ndarray]
    APPROXIMATE: ClassVar[bool] = False
    """Whether :meth:`settle` may make this index an inverted-file (IVF) one."""

    def kind(self) -> IndexKind:
        return "approximate" if self.lists() else "exact"

    def target_kind(self, wanted: IndexKind) -> IndexKind:
        if wanted == "exact" or not self.APPROXIMATE:
            return "exact"
        if self.lists() or len(self) >= APPROXIMATE_MIN_ENTRIES:
            return "approximate"
        return "exact"

    def settle(self, wanted: IndexKind) -> bool:
        lists = self.lists()
        if self.target_kind(wanted) == "exact":
            if lists:
                self._remake(0)
            return bool(lists)
        wanted_lists = self.list_count(len(self))
        if lists and wanted_lists < IVF_REGROW * lists:
            return False
        self._remake(wanted_lists)
        return True

    def list_count(self, entries: int) -> int:
        """Inverted lists an approximate index of ``entries`` is trained with."""
        return ivf_lists(entries)

    def lists(self) -> int:
        """Inverted lists of the FAISS index; 0 while it is exact."""
        return int(getattr(self.index, "nlist", 0)) if self.index is not None else 0

    def _remake(self, nlist: int) -> None:
        """Replace ``index`` by one holding the same entries: approximate with ``nlist``
        lists trained on them, or exact for ``nlist == 0``."""
        raise NotImplementedError(f"{type(self).__name__} has no approximate form")

    def remove(self, asset_nums: Iterable[int]) -> int:
        removed = 0
        for num in asset_nums:
            times = self.times.pop(num, None)
            self._forget(num)
            if times is None or not len(times) or self.index is None:
                continue
            ids = entry_ids(num, len(times))
            removed += int(self.index.remove_ids(faiss_selector(ids, self.index)))
        return removed

    def decode_ids(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(asset number, reference time) of FAISS ids; NaN for an asset no longer held."""
        assets, rows = split_ids(ids)
        times = np.full(len(ids), np.nan, np.float64)
        for a in np.unique(assets):
            sel = assets == a
            t = self.times.get(int(a))
            if t is not None:
                times[sel] = t[rows[sel]]
        return assets, times

    def _forget(self, asset_num: int) -> None:
        """Drop side data of a removed asset (nothing by default)."""

    def ref_length(self, asset_num: int) -> float:
        """Seconds of the asset's timeline (0 for a still)."""
        t = self.times.get(asset_num)
        return float(np.max(t)) if t is not None and len(t) else 0.0

    def asset_nums(self) -> set[int]:
        return set(self.times)

    def __len__(self) -> int:
        return int(self.index.ntotal) if self.index is not None else 0


class VectorIndex(RowsIndex):
    """Unit vectors of reference frames (``fingerprint[KEY]``, one row per time in
    ``fingerprint["times"]``) in ``faiss.IndexIDMap2`` over an exhaustive inner-product index,
    so scores are cosines.

    Exhaustive by default, because edited copies and re-creations are far-but-true matches
    that approximate indexes lose. Subclasses that set :attr:`~RowsIndex.APPROXIMATE` (the
    descriptor index) become an inverted file (:meth:`new_ivf`, :attr:`PROBES` lists searched)
    when ``MatcherSettings.index`` is ``approximate`` (:meth:`~RowsIndex.settle`). Saved as one
    ``.npz`` (the FAISS index serialised into it, with the times) replaced atomically: readers
    never see vectors and times of two versions; the serialised index says its own type.
    Subclasses name the file and the fingerprint key, and may store vectors otherwise
    (:meth:`new_faiss`, :meth:`new_ivf`).
    """

    FILE: ClassVar[str]
    KEY: ClassVar[str]
    """The fingerprint array of vectors (``embeddings``, ``descriptors``)."""
    PROBES: ClassVar[int] = 64
    """Inverted lists an approximate index searches per query (``nprobe``)."""

    def __init__(self) -> None:
        self.index: Any = None
        self.times: dict[int, np.ndarray] = {}

    def new_faiss(self, dim: int) -> Any:
        """The empty FAISS index vectors of ``dim`` dimensions go in (flat, float32)."""
        import faiss

        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def new_ivf(self, dim: int, nlist: int) -> Any:
        """The empty approximate FAISS index (inverted file, inner product, its quantizer not
        yet trained) for vectors of ``dim`` dimensions in ``nlist`` lists: IVF-Flat here.
        It must keep ids in a hash table (``DirectMap.Hashtable``), so entries can be
        reconstructed and removed by id."""
        import faiss

        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
        return ivf

    def _remake(self, nlist: int) -> None:
        import faiss

        old = self.index
        if self.lists():
            ids = ivf_contents(old, codes=False)[1]

            def read(positions: np.ndarray) -> np.ndarray:
                return np.asarray(old.reconstruct_batch(ids[positions]), np.float32)

        else:
            inner = faiss.downcast_index(old.index)
            ids = faiss.vector_to_array(old.id_map).astype(np.int64)

            def read(positions: np.ndarray) -> np.ndarray:
                return np.asarray(inner.reconstruct_batch(positions), np.float32)

        if nlist:
            new = self.new_ivf(old.d, nlist)
            train = read(ivf_sample(len(ids), nlist))
            new.quantizer.add(ivf_centroids(train, nlist, spherical=True))
            new.train(train)  # the quantizer is trained: only the vector codec is
            new.nprobe = self.PROBES
        else:
            new = self.new_faiss(old.d)
        for start in range(0, len(ids), 65536):
            positions = np.arange(start, min(len(ids), start + 65536))
            new.add_with_ids(read(positions), ids[positions])
        self.index = new

    @classmethod
    def load(cls, directory: Path) -> Self:
        idx = cls()
        path = directory / cls.FILE
        if not path.exists():
            return idx
        idx.index = read_npz_index(path, "faiss")
        if idx.lists():
            idx.index.nprobe = cls.PROBES
        with np.load(path) as data:
            owners, times = data["times_owner"], data["times"]
            for a in data["assets"].tolist():
                idx.times[int(a)] = times[owners == a]
        return idx

    def add(self, asset_num: int, fingerprint: Fingerprint) -> int:
        from reelwatch.errors import InputError

        if asset_num in self.times:
            self.remove([asset_num])
        vectors = np.ascontiguousarray(fingerprint[self.KEY], dtype=np.float32)
        if len(vectors):
            if self.index is None:
                self.index = self.new_faiss(vectors.shape[1])
            if vectors.shape[1] != self.index.d:
                raise InputError(
                    f"{self.KEY} of {vectors.shape[1]} dimensions for an index of "
                    f"{self.index.d}: rebuild the catalog index for the new model"
                )
            self.index.add_with_ids(vectors, entry_ids(asset_num, len(vectors)))
        self.times[asset_num] = fingerprint["times"].astype(np.float32)
        return len(vectors)

    def save(self, directory: Path) -> None:
        import faiss

        directory.mkdir(parents=True, exist_ok=True)
        assets = sorted(self.times)
        empty = np.zeros(0, np.float32)
        arrays: dict[str, np.ndarray] = {
            "faiss": (
                faiss.serialize_index(self.index)
                if self.index is not None
                else np.zeros(0, np.uint8)
            ),
            "assets": np.array(assets, np.int64),
            "times": np.concatenate([self.times[a] for a in assets]) if assets else empty,
            "times_owner": np.repeat(
                np.array(assets, np.int64), [len(self.times[a]) for a in assets]
            ),
        }
        write_npz(directory / self.FILE, arrays)


def read_npz_index(path: Path, name: str) -> Any:
    """The FAISS index serialised (``faiss.serialize_index``) as the array ``name`` of the
    ``.npz`` at ``path`` (saved by ``np.savez``, so stored uncompressed), or ``None`` when that
    array is empty.

    The bytes stream from the file into FAISS: ``np.load`` then ``faiss.deserialize_index``
    would hold them twice beside the index being built, and a worker loading the descriptor
    index of a million reference frames (2 GB) peaked at three times its size."""
    import zipfile

    import faiss

    with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, _ = np.lib.format.read_array_header_1_0(f)
        else:
            shape, _, _ = np.lib.format.read_array_header_2_0(f)
        if not int(np.prod(shape)):
            return None
        return faiss.read_index(faiss.PyCallbackIOReader(f.read))  # type: ignore[attr-defined]


def faiss_selector(ids: np.ndarray, index: Any = None) -> Any:
    """A FAISS id selector for ``ids`` to remove from ``index`` (FAISS is imported only when
    an index changes): a hashed batch, except for an IVF index that finds ids through a hash
    table (its direct map), which takes only an array (and looks each id up at once)."""
    import faiss

    direct = getattr(index, "direct_map", None)
    if direct is not None and direct.type == faiss.DirectMap.Hashtable:  # type: ignore[attr-defined]
        return faiss.IDSelectorArray(np.ascontiguousarray(ids, dtype=np.int64))
    return faiss.IDSelectorBatch(ids)


def _name_from_class(cls_name: str) -> str:
    words = re.findall(r"[A-Z][a-z0-9]*", cls_name.removesuffix("Signal"))
    return words[-1].lower() if words else cls_name.lower()


class Signal(ABC):
    """One kind of evidence that a query reuses a title's reference assets."""

    name: ClassVar[str]
    """Derived from the class name (``PdqCopySignal`` -> ``copy``); see the module docs."""
    version: ClassVar[int] = 1
    asset_kinds: ClassVar[frozenset[AssetKind]] = frozenset()
    """Kinds of catalog asset this signal indexes; others are skipped."""
    references: ClassVar[Literal["assets", "titles"]] = "assets"
    """What the index holds: fingerprints of reference assets, or title cards (see module)."""
    needs_audio: ClassVar[bool] = False
    """Decode the soundtrack too (mono float32, ``MatcherSettings.audio_rate``)."""
    index_type: ClassVar[type[SignalIndex]]
    """The :class:`SignalIndex` subclass that holds this signal's references."""
    visual: ClassVar[bool] = False
    """Hits point at frames: the engine cuts query/reference thumbnails as evidence."""
    reads_media: ClassVar[bool] = False
    """For ``references == "titles"`` signals: the query side is read from the media (words
    burned into the frames) through :meth:`fingerprint`, cached with the media's other
    fingerprints, instead of from the post's caption through :meth:`fingerprint_text`."""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = _name_from_class(cls.__name__)

    def __init__(self, settings: MatcherSettings) -> None:
        self.settings = settings

    def unavailable(self) -> str | None:
        """Why this signal cannot run with these settings on this machine, or ``None``."""
        return None

    def config_key(self) -> str:
        """What, besides :attr:`version`, changes fingerprints: cached ones with another key
        are recomputed. Override when settings shape the fingerprint."""
        return f"{self.name}-v{self.version}"

    @abstractmethod
    def fingerprint(self, decoded: Decoded, role: Role) -> Fingerprint:
        """Fingerprint decoded media as a reference asset or as a query."""

    def fingerprint_many(self, decoded: Sequence[Decoded], role: Role) -> list[Fingerprint]:
        """:meth:`fingerprint` of several media at once, in order. Signals whose model gains
        from larger batches (a GPU above all) override it to run every item's images
        through the model together; the result is the same as one call per item."""
        return [self.fingerprint(d, role) for d in decoded]

    def closeness(self, distance: float) -> float:
        """How alike one pair at ``distance`` (a :attr:`SignalHit.distance` unit) is, in
        [0, 1], for the evidence strip; 1 by default (the strip then shows where the stretch
        matched at all)."""
        return 1.0

    def subject_boxes(
        self, fingerprints: Sequence[Fingerprint], hints: Sequence[Box | None]
    ) -> list[Box | str | None]:
        """For a gallery (several reference stills of one subject added together): where the
        subject is in each, or why that reference is refused (a string).

        ``hints`` are boxes the user gave (``--face-box``), or ``None``. The catalog stores
        the box on the asset and passes it to :meth:`restrict` whenever it indexes the asset
        again (``catalog build``). Signals without a subject return ``None`` for each."""
        return [None] * len(fingerprints)

    def restrict(self, fingerprint: Fingerprint, box: Box | None) -> Fingerprint:
        """The reference fingerprint narrowed to the subject at ``box`` (unchanged by
        default, and whenever ``box`` is ``None``)."""
        return fingerprint

    def fingerprint_text(self, text: TextInput) -> Fingerprint:
        """Fingerprint words (signals whose :attr:`references` are ``"titles"``)."""
        raise NotImplementedError(f"the {self.name} signal does not read text")

    def new_index(self) -> SignalIndex:
        """An empty index of :attr:`index_type`."""
        return self.index_type()

    def load_index(self, directory: Path) -> SignalIndex:
        """The index saved under ``directory`` (an empty one if none was saved)."""
        return self.index_type.load(directory)

    @abstractmethod
    def search(
        self, index: SignalIndex, fingerprint: Fingerprint, query_duration: float
    ) -> list[SignalHit]:
        """Time-aligned hits of a query fingerprint, any number per reference asset."""

    @abstractmethod
    def score(self, hits: Sequence[SignalHit], query_duration: float) -> float:
        """Calibrated strength in [0, 1] of the hits on one title's assets."""
