"""Small generated sites for trying the replica without the demo: ``--generate N``.

Each post is a tiny real H.264 clip (made with PyAV) so yt-dlp downloads and decodes real
media; posts are one minute apart, newest first, all under one hashtag.
"""

from __future__ import annotations

import time
from pathlib import Path

from crawler.replica.site import ReplicaVideo, build_site


def make_clip(path: Path, shade: int, frames: int = 6, size: int = 32) -> Path:
    """A ``size``-pixel square, ``frames``-frame H.264 clip whose pixels depend on ``shade``
    (so files differ)."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=6)
        stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
        for i in range(frames):
            img = np.full((size, size, 3), (shade * 37 + i * 20) % 256, dtype=np.uint8)
            img[:, : min(size, (i + 1) * 4), 1] = shade * 50 % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def generate_site(site_dir: Path, count: int, hashtag: str, now: int | None = None) -> Path:
    """A site of ``count`` posts tagged ``hashtag``, the newest posted at ``now``."""
    site_dir = Path(site_dir)
    clips = site_dir / "clips"
    clips.mkdir(parents=True, exist_ok=True)
    newest = int(now if now is not None else time.time())
    videos = []
    for n in range(count):
        clip = make_clip(clips / f"{n}.mp4", n)
        videos.append(
            ReplicaVideo(
                id=f"7400{n:015d}",
                user=f"creator_{n % 7}",
                caption=f"post {n} of #{hashtag}",
                hashtags=[hashtag],
                path=clip,
                create_time=newest - n * 60,
                duration=1,
                width=32,
                height=32,
                plays=1000 + n,
            )
        )
    return build_site(site_dir, videos)
