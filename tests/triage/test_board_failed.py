"""The board's Failed posts page: failed posts with step, time and reason, a Retry per post
and "Retry all shown", both CSRF-guarded forms. Retries run the real pipeline (in-process):
posts on a loopback address with private hosts refused fail again at download, quickly and
with no network, and record it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from parsel import Selector

from reelwatch.models import Post, PostState
from reelwatch.settings import Settings
from tests.triage.factories import make_post
from triage.board.app import create_app
from triage.board.security import BOARD_TOKEN_ENV
from triage.stores import open_store
from triage.stores.base import Store
from workers.app import configure

LOCAL = "http://127.0.0.1"


def failed(store: Store, post_id: str, error: str, step: str = "download") -> Post:
    post = make_post(post_id, url=f"http://127.0.0.1:9/@x/video/{post_id}")
    store.upsert_post(post)
    store.set_post_state(post.key, PostState.FAILED, error=error, step=step, settings_digest="old")
    return post


@pytest.fixture
def board(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, Store]]:
    monkeypatch.delenv(BOARD_TOKEN_ENV, raising=False)
    settings.download.allow_private_hosts = False
    configure(settings)
    with open_store(settings) as store:
        failed(store, "1", "refusing to download from 127.0.0.1: not a public address")
        failed(store, "2", "refusing to download from 127.0.0.1: not a public address")
        failed(store, "3", "truncated or corrupt video <script>alert(1)</script>", "fingerprint")
        store.upsert_post(make_post("4"))
        yield settings, store


@pytest.fixture
def client(board: tuple[Settings, Store]) -> Iterator[TestClient]:
    with TestClient(create_app(*board), base_url=LOCAL) as c:
        yield c


def rows(client: TestClient, query: str = "") -> dict[str, list[str]]:
    response = client.get(f"/posts/failed{query}")
    assert response.status_code == 200, response.text[:500]
    page = Selector(text=response.text)
    return {
        row.attrib["data-post-key"]: [
            " ".join(c.css("::text").getall()).strip() for c in row.css("td")
        ]
        for row in page.css("tr.failed-row")
    }


def csrf(client: TestClient) -> str:
    token = (
        Selector(text=client.get("/posts/failed").text).css("input[name=csrf]::attr(value)").get()
    )
    assert token
    return token


def test_lists_failed_posts_with_step_reason_and_escapes_them(client: TestClient) -> None:
    shown = rows(client)
    assert set(shown) == {"tiktok:1", "tiktok:2", "tiktok:3"}
    assert shown["tiktok:3"][1] == "fingerprint"
    assert "truncated or corrupt video" in shown["tiktok:3"][4]
    assert "(settings changed since)" in shown["tiktok:1"][4]
    assert "<script>" not in client.get("/posts/failed").text
    assert set(rows(client, "?reason=CORRUPT")) == {"tiktok:3"}
    assert set(rows(client, "?since=1h")) == {"tiktok:1", "tiktok:2", "tiktok:3"}
    assert rows(client, "?since=2099-01-01") == {}
    bad = client.get("/posts/failed?since=someday")
    assert bad.status_code == 400 and "--since" in bad.text


def test_retry_one_post_runs_it_again_and_records_the_new_failure(
    client: TestClient, board: tuple[Settings, Store]
) -> None:
    _, store = board
    before = store.get_post("tiktok:1")
    answer = client.post(
        "/posts/retry", data={"csrf": csrf(client), "key": "tiktok:1"}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"].endswith("retried=1")
    after = store.get_post("tiktok:1")
    assert before is not None and after is not None
    assert after.state == PostState.FAILED and after.retries == 1
    assert after.failed_step == "download" and after.failed_at and before.failed_at
    assert after.failed_at > before.failed_at and after.failed_settings != "old"
    others = [store.get_post(k) for k in ("tiktok:2", "tiktok:3")]
    assert all(p is not None and p.retries == 0 for p in others)


def test_retry_all_shown_takes_the_filters_and_needs_the_csrf_token(
    client: TestClient, board: tuple[Settings, Store]
) -> None:
    _, store = board
    refused = client.post("/posts/retry", data={"reason": "public address"})
    assert refused.status_code == 403
    assert all(p.retries == 0 for p in store.list_posts(PostState.FAILED))

    answer = client.post(
        "/posts/retry",
        data={"csrf": csrf(client), "reason": "public address", "all": "1"},
        follow_redirects=False,
    )
    assert answer.status_code == 303 and "retried=2" in answer.headers["location"]
    retried = {p.key: p.retries for p in store.list_posts(PostState.FAILED)}
    assert retried == {"tiktok:1": 1, "tiktok:2": 1, "tiktok:3": 0}
    notice = Selector(text=client.get(answer.headers["location"]).text).css("p.notice::text").get()
    assert notice == "2 post(s) retried."
    # A post that is not failed is not put back by a crafted form.
    crafted = client.post("/posts/retry", data={"csrf": csrf(client), "key": "tiktok:4"})
    assert crafted.status_code == 400 and "not failed" in crafted.text
    assert store.get_post("tiktok:4").state == PostState.DISCOVERED  # type: ignore[union-attr]
