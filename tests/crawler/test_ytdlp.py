"""A real yt-dlp downloads replica posts through ReplicaIE, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yt_dlp

from crawler import ytdlp_extractors
from crawler.replica import ReplicaServer
from crawler.replica.ytdlp import ReplicaIE
from tests.crawler.conftest import HOSTILE_CAPTION


def youtube_dl(out_dir: Path) -> yt_dlp.YoutubeDL:
    """A YoutubeDL set up the way the download worker must: ours first, then yt-dlp's."""
    ydl = yt_dlp.YoutubeDL(
        {
            "outtmpl": str(out_dir / "%(id)s.%(ext)s"),
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
        },
        auto_init=False,
    )
    for cls in ytdlp_extractors():
        ydl.add_info_extractor(cls())
    ydl.add_default_info_extractors()
    return ydl


def test_downloads_a_replica_post_byte_identical(
    replica: ReplicaServer, site: Path, tmp_path: Path
) -> None:
    url = f"{replica.base_url}/@user_3/video/7300000000000000003"
    with youtube_dl(tmp_path) as ydl:
        info: dict[str, Any] = ydl.extract_info(url, download=True)
    assert info["extractor"] == "replica"
    assert (info["id"], info["uploader"], info["width"], info["height"]) == (
        "7300000000000000003",
        "user_3",
        32,
        32,
    )
    assert info["duration"] == 1
    assert info["title"].startswith(HOSTILE_CAPTION)
    downloaded = tmp_path / "7300000000000000003.mp4"
    assert downloaded.read_bytes() == (site / "videos" / "7300000000000000003.mp4").read_bytes()


def test_an_unknown_post_is_an_expected_error(replica: ReplicaServer, tmp_path: Path) -> None:
    with youtube_dl(tmp_path) as ydl, pytest.raises(yt_dlp.utils.DownloadError, match="404"):
        ydl.extract_info(f"{replica.base_url}/@user_3/video/12345", download=False)


@pytest.mark.parametrize(
    ("url", "suitable"),
    [
        ("http://127.0.0.1:8080/@some.user/video/7300000000000000003", True),
        ("https://replica.example/@u/video/1?lang=en", True),
        ("https://www.tiktok.com/@u/video/7300000000000000003", False),
        ("https://tiktok.com/@u/video/7300000000000000003", False),
        ("https://m.tiktok.com:443/@u/video/7300000000000000003", False),
        ("http://127.0.0.1:8080/tag/dragonfilm", False),
    ],
)
def test_leaves_tiktok_itself_to_yt_dlp(url: str, suitable: bool) -> None:
    assert ReplicaIE.suitable(url) is suitable
