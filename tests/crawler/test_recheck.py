"""Re-checks of a post through its source: the classification of what platforms answer, and
the replica's take-downs through real HTTP and real yt-dlp."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.recheck import (
    PostCheck,
    classify_page,
    classify_ytdlp_error,
    ytdlp_detail,
)
from crawler.replica import ReplicaServer, challenge_id, load_items
from crawler.replica.signing import CAPTCHA_PAGE
from crawler.sources import ReplicaSource
from crawler.tiktok_format import rehydration_page
from reelwatch.models import CheckOutcome, Post
from reelwatch.settings import Settings
from tests.crawler.conftest import point_at
from tests.crawler.test_replica_server import blob, get
from workers.recheck import check_post

UP, REMOVED, UNKNOWN = CheckOutcome.UP, CheckOutcome.REMOVED, CheckOutcome.UNKNOWN
POST = "7300000000000000001"
OTHER = "7300000000000000002"


def video_page(detail: dict[str, object]) -> bytes:
    """A TikTok post page whose rehydration blob holds ``detail`` as webapp.video-detail."""
    scope = {"webapp.app-context": {"region": "US"}, "webapp.video-detail": detail}
    return rehydration_page("TikTok", scope)


LIVE = video_page({"statusCode": 0, "statusMsg": "", "itemInfo": {"itemStruct": {"id": POST}}})

PAGE_ANSWERS: list[tuple[str, int, bytes, str, CheckOutcome, str]] = [
    ("live post", 200, LIVE, "", UP, "HTTP 200 statusCode 0"),
    (
        "removed (10204)",
        200,
        video_page({"statusCode": 10204, "statusMsg": ""}),
        "",
        REMOVED,
        "HTTP 200 statusCode 10204 (item doesn't exist)",
    ),
    (
        "private post (10216)",
        200,
        video_page({"statusCode": 10216, "statusMsg": "item is private"}),
        "",
        REMOVED,
        "HTTP 200 statusCode 10216 (item is private)",
    ),
    (
        "private account (10222)",
        200,
        video_page({"statusCode": 10222}),
        "",
        REMOVED,
        "HTTP 200 statusCode 10222 (private account)",
    ),
    (
        "an unknown status code",
        200,
        video_page({"statusCode": 10101, "statusMsg": "server is busy"}),
        "",
        UNKNOWN,
        "HTTP 200 statusCode 10101 (server is busy)",
    ),
    (
        "statusCode 0 for another post",
        200,
        video_page({"statusCode": 0, "itemInfo": {"itemStruct": {"id": OTHER}}}),
        "",
        UNKNOWN,
        f"HTTP 200 statusCode 0 for another post {OTHER}",
    ),
    ("statusCode 0 without an item", 200, video_page({"statusCode": 0}), "", UNKNOWN, ""),
    ("not found", 404, b"video not found\n", "", REMOVED, "HTTP 404"),
    ("gone", 410, b"", "", REMOVED, "HTTP 410"),
    ("rate limited", 429, b"", "", UNKNOWN, "HTTP 429 (rate limited)"),
    ("server error", 500, b"internal error", "", UNKNOWN, "HTTP 500 (server error)"),
    ("outage", 503, b"", "", UNKNOWN, "HTTP 503 (server error)"),
    ("blocked", 403, b"Access Denied", "", UNKNOWN, "HTTP 403 (forbidden, blocked?)"),
    ("captcha", 200, CAPTCHA_PAGE, "", UNKNOWN, "HTTP 200 captcha or verification page"),
    ("empty answer", 200, b"", "", UNKNOWN, "HTTP 200 empty body"),
    ("whitespace answer", 200, b" \n ", "", UNKNOWN, "HTTP 200 empty body"),
    (
        "a block page",
        200,
        b"<html><body>Access denied</body></html>",
        "",
        UNKNOWN,
        "HTTP 200 no rehydration data (a block page?)",
    ),
    ("garbage", 200, b"\x00\xff\xfe garbage", "", UNKNOWN, ""),
    (
        "a broken blob",
        200,
        b'<script id="__UNIVERSAL_DATA_FOR_REHYDRATION__">{"__DEFAULT_SCOPE__": {</script>',
        "",
        UNKNOWN,
        "",
    ),
    (
        "a page without video detail",
        200,
        rehydration_page("TikTok", {"webapp.app-context": {}}),
        "",
        UNKNOWN,
        "HTTP 200 no video detail in the page",
    ),
    (
        "redirected to a login wall",
        200,
        b"<html><body><form>log in</form></body></html>",
        "https://www.tiktok.com/login?redirect_url=x",
        UNKNOWN,
        "HTTP 200 login wall at /login",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "final_url", "outcome", "detail"),
    [case[1:] for case in PAGE_ANSWERS],
    ids=[case[0] for case in PAGE_ANSWERS],
)
def test_a_post_page_answer_is_classified_and_said_in_one_line(
    status: int, body: bytes, final_url: str, outcome: CheckOutcome, detail: str
) -> None:
    check = classify_page(status, body, post_id=POST, final_url=final_url)
    assert check.outcome == outcome
    if detail:
        assert check.detail == detail
    assert "\n" not in check.detail and check.detail.startswith(f"HTTP {status}")


# What yt-dlp says (as DownloadError text), from its extractors and their issue trackers.
YTDLP_MESSAGES: list[tuple[str, CheckOutcome]] = [
    ("ERROR: [youtube] dQw4w9WgXcQ: Video unavailable", REMOVED),
    (
        "ERROR: [youtube] x: Video unavailable. This video has been removed by the uploader",
        REMOVED,
    ),
    (
        "ERROR: [youtube] x: This video has been removed for violating YouTube's policy on "
        "hate speech.",
        REMOVED,
    ),
    (
        "ERROR: [youtube] x: Video unavailable. This video is no longer available because the "
        "YouTube account associated with this video has been terminated.",
        REMOVED,
    ),
    (
        "ERROR: [youtube] x: Video unavailable. This video is no longer available due to a "
        "copyright claim by Northlight Pictures",
        REMOVED,
    ),
    (
        "ERROR: [youtube] x: Private video. Sign in if you've been granted access to this "
        "video. Use --cookies-from-browser or --cookies for the authentication.",
        REMOVED,
    ),
    ("ERROR: [vimeo] 123: This video has been deleted", REMOVED),
    ("ERROR: [twitter] 1: Twitter API says: No status found with that ID.", REMOVED),
    ("ERROR: [twitter] 1: Suspended", REMOVED),
    ("ERROR: [twitter] 1: Requested tweet is unavailable", REMOVED),
    ("ERROR: [TikTok] 7: Video not available, status code 10216", REMOVED),
    (
        "ERROR: [TikTok] 7: You do not have permission to view this post. Log into an account "
        "that has access",
        REMOVED,
    ),
    (
        "ERROR: [replica] 7: Video currently unavailable (statusCode 10204: item doesn't exist)",
        REMOVED,
    ),
    ("ERROR: [replica] 7: This video is private (statusCode 10216: item is private)", REMOVED),
    (
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 404: Not Found "
        "(caused by <HTTPError 404: Not Found>)",
        REMOVED,
    ),
    ("ERROR: [generic] x: Unable to download webpage: HTTP Error 410: Gone", REMOVED),
    # Faults and gates: the post may be up.
    (
        "ERROR: [youtube] x: Video unavailable. This content isn't available, try again later.",
        UNKNOWN,
    ),
    (
        "ERROR: [youtube] x: Sign in to confirm you're not a bot. Use --cookies-from-browser "
        "or --cookies for the authentication.",
        UNKNOWN,
    ),
    (
        "ERROR: [youtube] x: Sign in to confirm your age. This video may be inappropriate for "
        "some users.",
        UNKNOWN,
    ),
    (
        "ERROR: [youtube] x: Video unavailable. The uploader has not made this video available "
        "in your country",
        UNKNOWN,
    ),
    ("ERROR: [TikTok] 7: Your IP address is blocked from accessing this post", UNKNOWN),
    (
        "ERROR: [TikTok] 7: This post may not be comfortable for some audiences. Log in for access",
        UNKNOWN,
    ),
    ("ERROR: [TikTok] 7: TikTok is requiring login for access to this content", UNKNOWN),
    (
        "ERROR: [Instagram] C1: Requested content is not available, rate-limit reached or "
        "login required",
        UNKNOWN,
    ),
    ("ERROR: [twitter] 1: NSFW tweet requires authentication", UNKNOWN),
    (
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 429: Too Many Requests",
        UNKNOWN,
    ),
    (
        "ERROR: [generic] x: Unable to download webpage: HTTP Error 503: Service Unavailable",
        UNKNOWN,
    ),
    ("ERROR: [generic] x: Unable to download webpage: The read operation timed out", UNKNOWN),
    ("ERROR: [generic] x: Unable to download webpage: [Errno 111] Connection refused", UNKNOWN),
    ("ERROR: [youtube] x: Join this channel to get access to members-only content", UNKNOWN),
    ("ERROR: Unsupported URL: https://example.com/watch/1", UNKNOWN),
    ("ERROR: [TikTok] 7: Unable to extract universal data for rehydration", UNKNOWN),
    ("ERROR: [TikTok] 7: Video not available, status code 100004", UNKNOWN),
]


@pytest.mark.parametrize(("message", "outcome"), YTDLP_MESSAGES)
def test_a_ytdlp_error_is_removed_only_when_it_says_so(message: str, outcome: CheckOutcome) -> None:
    assert classify_ytdlp_error(message) == outcome


def test_ytdlp_detail_drops_the_prefix_and_the_bug_report_tail() -> None:
    message = (
        "ERROR: [TikTok] 7450786343019449622: Video not available, status code 10204; please "
        "report this issue on  https://github.com/yt-dlp/yt-dlp/issues?q= , filling out the "
        "appropriate issue template."
    )
    assert ytdlp_detail(message) == "Video not available, status code 10204"
    assert ytdlp_detail("ERROR: [youtube] x: Video unavailable") == "Video unavailable"


# -- the replica's take-downs, through real HTTP -----------------------------------------------
@pytest.fixture
def own_replica(site: Path) -> Iterator[ReplicaServer]:
    """A replica of its own (the shared one must never lose a post)."""
    with ReplicaServer(site, page_size=2) as server:
        yield server


def page_of(server: ReplicaServer, post_id: str = POST, user: str = "user_1") -> str:
    return f"{server.base_url}/@{user}/video/{post_id}"


def tag_ids(server: ReplicaServer) -> list[str]:
    """The ids #dragonfilm lists through the item-list API."""
    query = f"challengeID={challenge_id('dragonfilm')}&count=50"
    status, _, body = get(f"{server.base_url}/api/challenge/item_list/?{query}")
    assert status == 200
    return [i["id"] for i in json.loads(body)["itemList"]]


@pytest.mark.parametrize(
    ("reason", "code"), [("copyright", 10204), ("deleted", 10204), ("private", 10216)]
)
def test_a_taken_down_post_answers_as_tiktok_does_until_restored(
    own_replica: ReplicaServer, reason: str, code: int
) -> None:
    media = f"{own_replica.base_url}/video/{POST}.mp4"
    assert POST in tag_ids(own_replica)
    own_replica.take_down(POST, reason)

    status, _, page = get(page_of(own_replica))
    assert status == 200
    detail = blob(page)["webapp.video-detail"]
    assert detail["statusCode"] == code
    assert "itemInfo" not in detail
    assert get(media)[0] == 404
    assert POST not in tag_ids(own_replica)
    assert own_replica.taken_down(POST) == reason

    own_replica.restore(POST)
    status, _, page = get(page_of(own_replica))
    assert status == 200
    assert blob(page)["webapp.video-detail"]["itemInfo"]["itemStruct"]["id"] == POST
    assert get(media)[0] == 200
    assert POST in tag_ids(own_replica)


def test_take_down_refuses_an_unknown_post_or_reason(own_replica: ReplicaServer) -> None:
    with pytest.raises(KeyError, match="no post 999"):
        own_replica.take_down("999")
    with pytest.raises(ValueError, match="unknown take-down reason 'gone'"):
        own_replica.take_down(POST, "gone")
    assert get(page_of(own_replica, "999"))[0] == 404  # an unknown id still 404s


def test_a_hashtag_whose_every_post_is_down_is_not_found(own_replica: ReplicaServer) -> None:
    tagged = [i["id"] for i in load_items(own_replica.site_dir)]
    for post_id in tagged:
        own_replica.take_down(post_id)
    status, _, page = get(f"{own_replica.base_url}/tag/dragonfilm")
    assert status == 200
    assert blob(page)["webapp.challenge-detail"]["statusCode"] == 10205


# -- check_post through the page and through yt-dlp -------------------------------------------
def post_on(server: ReplicaServer, platform: str, post_id: str = POST) -> Post:
    return Post(platform=platform, post_id=post_id, url=page_of(server, post_id))


@pytest.fixture
def check_settings(settings: Settings, own_replica: ReplicaServer) -> Settings:
    point_at(settings, own_replica)
    settings.download.allow_private_hosts = True
    settings.download.retries = 0
    return settings


@pytest.mark.parametrize("platform", ["replica", "ytdlp"])
def test_check_post_sees_a_take_down_and_a_restore(
    check_settings: Settings, own_replica: ReplicaServer, platform: str
) -> None:
    """``replica`` posts are checked through the page, ``ytdlp`` ones through real yt-dlp
    (the replica's extractor), both on the replica's real HTTP."""
    post = post_on(own_replica, platform)
    up = check_post(check_settings, post)
    assert up.outcome == UP, up

    own_replica.take_down(POST, "copyright")
    gone = check_post(check_settings, post)
    assert gone.outcome == REMOVED, gone
    own_replica.take_down(POST, "private")
    private = check_post(check_settings, post)
    assert private.outcome == REMOVED, private
    if platform == "replica":
        assert gone.detail == "HTTP 200 statusCode 10204 (item doesn't exist)"
        assert private.detail == "HTTP 200 statusCode 10216 (item is private)"
    else:
        assert gone.detail.startswith("yt-dlp: Video currently unavailable (statusCode 10204")
        assert private.detail.startswith("yt-dlp: This video is private")

    own_replica.restore(POST)
    assert check_post(check_settings, post).outcome == UP


@pytest.mark.parametrize("platform", ["replica", "ytdlp"])
def test_faults_make_a_check_unknown_never_removed(
    check_settings: Settings, own_replica: ReplicaServer, platform: str
) -> None:
    post = post_on(own_replica, platform)
    own_replica.take_down(POST)  # even a post that is down reads unknown through a fault
    for status in (429, 503):
        own_replica.faults.outage(60, status)
        check = check_post(check_settings, post)
        assert check.outcome == UNKNOWN, check
        assert str(status) in check.detail
    own_replica.faults.outage(0)
    own_replica.captcha = True
    check = check_post(check_settings, post)
    assert check.outcome == UNKNOWN, check
    own_replica.captcha = False
    assert check_post(check_settings, post).outcome == REMOVED


@pytest.mark.parametrize("platform", ["replica", "ytdlp"])
def test_a_post_the_site_never_had_reads_removed(
    check_settings: Settings, own_replica: ReplicaServer, platform: str
) -> None:
    check = check_post(check_settings, post_on(own_replica, platform, "7399999999999999999"))
    assert check.outcome == REMOVED, check
    assert "404" in check.detail


@pytest.mark.parametrize("platform", ["replica", "ytdlp"])
def test_private_addresses_are_not_checked_unless_allowed(
    check_settings: Settings, own_replica: ReplicaServer, platform: str
) -> None:
    check_settings.download.allow_private_hosts = False
    check = check_post(check_settings, post_on(own_replica, platform))
    assert check == PostCheck(UNKNOWN, check.detail)
    assert "not a public address" in check.detail


def test_an_unreachable_site_is_unknown(check_settings: Settings) -> None:
    from triage.smtp_sink import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    ReplicaSource.set_base_url(check_settings, dead)
    post = Post(platform="replica", post_id=POST, url=f"{dead}/@user_1/video/{POST}")
    check = check_post(check_settings, post)
    assert check.outcome == UNKNOWN
    assert check.detail.startswith("network error at ")


def test_a_page_check_goes_to_the_configured_replica_address(
    check_settings: Settings, own_replica: ReplicaServer
) -> None:
    """A post crawled from a replica that has since moved port is checked where it is now."""
    post = Post(platform="replica", post_id=POST, url=f"http://127.0.0.1:1/@user_1/video/{POST}")
    assert check_post(check_settings, post).outcome == UP
