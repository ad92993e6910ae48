"""Watchlists: what a watch carries to its crawls, and one clear error for a malformed file."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelwatch.errors import InputError
from reelwatch.models import Confidence
from reelwatch.watches import (
    Watch,
    WatchOptions,
    format_duration,
    get_watch,
    load_watches,
    parse_duration,
)

GOOD = """\
# a comment line
watches:
  - name: demo
    platform: replica
    hashtags: [starfallstation]
  - name: bridgerton
    platform: tiktok
    hashtags: ["#Bridgerton", queencharlotte, bridgerton]
    limit: 50
    schedule: "15 */2 * * 1-5"
    min_confidence: medium
    max_age: 7d
    recipients: [legal@studio.test, "Brand Team <brand@studio.test>"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "watchlist.yaml"
    path.write_text(text)
    return path


def test_a_watch_carries_its_own_alert_settings_and_bounds(tmp_path: Path) -> None:
    demo, bridgerton = load_watches(write(tmp_path, GOOD))
    assert bridgerton.hashtags == ["bridgerton", "queencharlotte"]
    options = bridgerton.options()
    assert options == WatchOptions(
        name="bridgerton",
        recipients=["legal@studio.test", "Brand Team <brand@studio.test>"],
        min_confidence=Confidence.MEDIUM,
        limit=50,
        max_age_s=7 * 86400,
    )
    # What travels in task arguments is plain JSON and reads back the same.
    assert WatchOptions.of(options.task_arg()) == options
    # A watch that sets nothing leaves alerting to the settings.
    assert demo.options().recipients is None and demo.options().min_confidence is None
    assert WatchOptions.of("old-message") == WatchOptions(name="old-message")
    assert WatchOptions.of(None) == WatchOptions()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("7d", 604800), ("12h", 43200), ("30m", 1800), ("90s", 90), ("2w", 1209600), (3600, 3600)],
)
def test_max_age_reads_as_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds
    watch = Watch.model_validate(
        {"name": "w", "platform": "replica", "hashtags": ["a"], "max_age": text}
    )
    assert watch.max_age_s == seconds
    assert parse_duration(format_duration(seconds)) == seconds


CASES = [
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a\n  - name: b\n",
        "line 5: not valid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence on line 4)",
        id="yaml-syntax",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n"
        "  - name: b\n    hashtags: [b]\n",
        "line 5: watches[1].platform: Field required",
        id="missing-field",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n"
        "  - name: b\n    platform: tiktok\n    hashtags: [b]\n    min_confidence: hgh\n",
        "line 8: watches[1].min_confidence: Input should be 'low', 'medium' or 'high'",
        id="bad-enum",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n    limit: lots\n",
        "line 5: watches[0].limit: Input should be a valid integer",
        id="wrong-type",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n"
        '    schedule: "61 * * * *"\n',
        "line 5: watches[0].schedule: schedule '61 * * * *' is not a valid crontab",
        id="bad-crontab",
    ),
    pytest.param(
        'watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n    schedule: "hourly"\n',
        "line 5: watches[0].schedule: schedule 'hourly' needs 5 crontab fields",
        id="crontab-fields",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n"
        "  - name: a\n    platform: tiktok\n    hashtags: [b]\n",
        "line 5: watches[1].name: 'a' is already the name of watches[0]",
        id="duplicate-name",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n    max_age: 7 dayz\n",
        "line 5: watches[0].max_age: '7 dayz' is not a duration",
        id="bad-max-age",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n"
        "    recipients:\n      - ok@studio.test\n      - not-an-address\n",
        "line 7: watches[0].recipients[1]: 'not-an-address' is not an email address",
        id="bad-recipient",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: [a]\n    min_confidnce: low\n",
        "line 5: watches[0].min_confidnce: Extra inputs are not permitted",
        id="typo-in-a-key",
    ),
    pytest.param(
        "watches:\n  - name: a\n    platform: replica\n    hashtags: ['#']\n",
        "line 4: watches[0].hashtags: a watch needs at least one hashtag",
        id="no-hashtag",
    ),
    pytest.param(
        "- name: a\n",
        "line 1: expected a mapping with a `watches:` list",
        id="not-a-mapping",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_a_malformed_watchlist_is_one_error_naming_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_watches(path)
    message = str(caught.value)
    assert message.startswith(f"watchlist {path} {expected}"), message
    assert "\n" not in message


def test_several_problems_name_the_first_and_count_the_rest(tmp_path: Path) -> None:
    path = write(tmp_path, "watches:\n  - name: a\n    hashtags: [a]\n    limit: 0\n")
    with pytest.raises(InputError, match=r"line 2: watches\[0\]\.platform: Field required "):
        load_watches(path)
    with pytest.raises(InputError, match=r"\(and 1 more problem\)$"):
        load_watches(path)


def test_an_empty_watchlist_has_no_watches_and_a_missing_one_is_named(tmp_path: Path) -> None:
    assert load_watches(write(tmp_path, "# nothing yet\n")) == []
    with pytest.raises(InputError, match=r"watchlist .*nope\.yaml does not exist"):
        load_watches(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="no watch named 'x'"):
        get_watch(write(tmp_path, GOOD), "x")


def test_the_shipped_watchlist_loads() -> None:
    root = Path(__file__).resolve().parents[1]
    watches = load_watches(root / "config" / "watchlists" / "default.yaml")
    assert {w.name for w in watches} >= {"demo", "bridgerton"}
