"""The pure pieces of ``benchmarks/bench.py``: its docs section replaces only itself, and the
clip-set builder makes clips of the sizes and lengths it states.

The whole benchmark (even ``--quick``) takes several minutes here, so it is not run as a
test; ``make bench`` runs it.
"""

from __future__ import annotations

from pathlib import Path

import av
import pytest

from benchmarks import _clipset
from benchmarks.bench import demote_headings, replace_section
from reelwatch.demo import media
from reelwatch.digest import sha256_file

DOC = """# Benchmarks

Intro line.

## `reelwatch demo --no-board`

- demo figures

## `make bench`

old figures
| a | b |

## Evaluation

- eval figures
"""

NEW = "## `make bench`\n\nnew figures\n"


def test_replacing_the_section_keeps_every_other_section() -> None:
    out = replace_section(DOC, NEW)
    assert "old figures" not in out and "| a | b |" not in out
    assert "new figures" in out
    assert out.count("## `make bench`") == 1
    assert out.startswith("# Benchmarks\n\nIntro line.\n\n## `reelwatch demo --no-board`\n")
    assert "- demo figures\n\n## `make bench`\n\nnew figures\n\n## Evaluation\n\n- eval" in out
    assert out.endswith("- eval figures\n")
    assert replace_section(out, NEW) == out


def test_the_section_is_added_before_the_first_section_when_missing() -> None:
    doc = DOC.replace("## `make bench`\n\nold figures\n| a | b |\n\n", "")
    out = replace_section(doc, NEW)
    assert out.index("new figures") < out.index("## `reelwatch demo")
    assert out.startswith("# Benchmarks\n\nIntro line.\n\n## `make bench`\n")
    assert out.replace("## `make bench`\n\nnew figures\n\n", "") == doc
    assert (
        replace_section("# Benchmarks\n", NEW) == "# Benchmarks\n\n## `make bench`\n\nnew figures\n"
    )


def test_an_unquoted_heading_is_the_same_section() -> None:
    out = replace_section(DOC.replace("## `make bench`", "## make bench"), NEW)
    assert "old figures" not in out and out.count("make bench") == 1


def test_sub_benchmark_headings_stay_inside_the_section() -> None:
    fragment = "## Index search\n\ntext\n# Top\n### Deeper\n#not a heading\n"
    assert (
        demote_headings(fragment) == "### Index search\n\ntext\n### Top\n### Deeper\n#not a heading"
    )
    doc = replace_section(DOC, NEW + "\n" + demote_headings(fragment))
    assert "## Evaluation" in doc and "- eval figures" in doc
    assert "### Index search" in doc


def _streams(path: Path) -> tuple[float, int, int, bool]:
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        seconds = float(container.duration or 0) / 1e6
        return (
            seconds,
            vs.codec_context.width,
            vs.codec_context.height,
            bool(container.streams.audio),
        )


@pytest.mark.slow
def test_the_clip_set_has_the_stated_sizes_and_lengths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = tmp_path / "refs"
    # A short stand-in for the title's 32 s reference: the first short clip excerpts 3-13 s.
    media.make_reference_clip(
        ["astronaut", "rocket"],
        refs / "Starfall Station" / "reference.mp4",
        seconds_per_photo=7,
        seed=11,
    )
    monkeypatch.setattr(_clipset, "PIECE_S", 2.5)  # the unrelated long clip is joined pieces
    clips = _clipset.build_clipset(tmp_path / "clips", refs, n_long=3, n_short=2, long_seconds=5)

    assert [c.name for c in clips] == ["long-0", "long-1", "long-2", "short-0", "short-1"]
    assert [c.expect for c in clips] == [
        "Starfall Station",
        None,
        "Starfall Station",
        "Starfall Station",
        None,
    ]
    assert [c.seconds for c in clips] == [5, 5, 5, 10, 12]
    for clip in clips:
        seconds, width, height, has_audio = _streams(clip.path)
        assert (
            (width, height) == clip.size == ((1280, 720) if clip.group == "long" else (576, 1024))
        )
        assert seconds == pytest.approx(clip.seconds, abs=0.25), clip.name
        assert has_audio, clip.name
    assert len({sha256_file(c.path) for c in clips}) == len(clips)
