"""The provenance check: real C2PA manifests signed here with a throw-away ES256 certificate
chain (no committed binaries), read back with c2pa-python; platform labels, hashtags and
captions, including hostile ones."""

from __future__ import annotations

import io
import json
import random
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import matcher.signals.provenance as provenance
from matcher.signals.provenance import (
    AI_TOOLS,
    GENERIC_AI,
    C2PASummary,
    ai_flags,
    normalise_hashtag,
    read_c2pa,
)
from reelwatch.demo.media import load_photo, make_reference_clip
from reelwatch.errors import InputError

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED = IPTC + "trainedAlgorithmicMedia"
AI_REASON_JPEG = (
    "C2PA: trainedAlgorithmicMedia (created with SoraLike/1.0); "
    "signer 'SoraLike Signer' not on a trust list"
)


# A certificate chain C2PA's validator accepts ------------------------------------------------


@dataclass(frozen=True)
class Pki:
    chain_pem: bytes
    """End-entity certificate then the root, as c2pa-rs wants the chain."""
    key_pem: bytes
    root_pem: str


def _name(cn: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Reelwatch Test"),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> Any:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@pytest.fixture(scope="module")
def pki() -> Pki:
    """An ES256 root CA and an end-entity certificate as the C2PA spec (and c2pa-rs) requires
    of a claim signer: X.509 v3, not self-signed, critical KeyUsage with digitalSignature, an
    EKU of emailProtection (no anyExtendedKeyUsage), CA:FALSE, subject/authority key ids."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.now(UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = (
        x509.CertificateBuilder()
        .subject_name(_name("Reelwatch Test Root CA"))
        .issuer_name(_name("Reelwatch Test Root CA"))
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("SoraLike Signer"))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), False
        )
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return Pki(
        chain_pem=cert.public_bytes(pem) + root.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        root_pem=root.public_bytes(pem).decode(),
    )


def sign(
    media: bytes,
    fmt: str,
    pki: Pki,
    *,
    source_type: str | None = TRAINED,
    agent: dict[str, str] | None = None,
    remote_url: str | None = None,
) -> bytes:
    """``media`` with a C2PA manifest saying it was created by "SoraLike/1.0", signed with
    c2pa-python's Builder (thumbnails off: the test is about the claim, not the preview)."""
    import c2pa

    action: dict[str, Any] = {"action": "c2pa.created"}
    if source_type:
        action["digitalSourceType"] = source_type
    if agent:
        action["softwareAgent"] = agent
    manifest = {
        "claim_generator_info": [{"name": "SoraLike", "version": "1.0"}],
        "title": "generated",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, pki.chain_pem, pki.key_pem, None)
    out = io.BytesIO()
    with (
        c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}}) as ctx,
        c2pa.Signer.from_info(info) as signer,
        c2pa.Builder(manifest, ctx) as builder,
    ):
        if remote_url:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        builder.sign(signer, fmt, io.BytesIO(media), out)
    return out.getvalue()


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(load_photo("astronaut")).save(buf, "JPEG", quality=85)
    return buf.getvalue()


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    make_reference_clip(["coffee"], path, seconds_per_photo=1.0, size=(320, 180), fps=12, seed=3)
    return path.read_bytes()


@pytest.fixture(scope="module")
def ai_jpeg(jpeg: bytes, pki: Pki) -> bytes:
    return sign(jpeg, "image/jpeg", pki, agent={"name": "SoraLike", "version": "1.0"})


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def flip(data: bytes, at: int, n: int = 1) -> bytes:
    out = bytearray(data)
    for i in range(at, at + n):
        out[i] ^= 0xFF
    return bytes(out)


# Signed manifests ----------------------------------------------------------------------------


def test_signed_jpeg_reads_back_as_ai_with_its_generator(ai_jpeg: bytes, tmp_path: Path) -> None:
    path = write(tmp_path, "gen.jpg", ai_jpeg)
    s = read_c2pa(path)
    assert (s.state, s.present, s.valid) == ("valid", True, True)
    assert s.problems == ("signingCredential.untrusted",)
    assert s.claim_generators == ("SoraLike/1.0",)
    assert (s.signer, s.issuer) == ("SoraLike Signer", "Reelwatch Test")
    assert s.actions == ("c2pa.created",)
    assert s.ai_source_types == ("trainedAlgorithmicMedia",)
    assert s.ai_tools == ("SoraLike/1.0",)

    flag = ai_flags(
        media_path=path, ai_label=None, is_ai_labelled=False, hashtags=[], caption="lovely"
    )
    assert flag.is_ai
    assert flag.reasons == [AI_REASON_JPEG]


def test_a_signer_under_a_given_trust_anchor_is_trusted(
    ai_jpeg: bytes, pki: Pki, tmp_path: Path
) -> None:
    path = write(tmp_path, "gen.jpg", ai_jpeg)
    s = read_c2pa(path, trust_anchors=pki.root_pem)
    assert s.state == "trusted"
    assert "signingCredential.untrusted" not in s.problems
    flag = ai_flags(media_path=path, trust_anchors=pki.root_pem)
    assert flag.reasons == [
        "C2PA: trainedAlgorithmicMedia (created with SoraLike/1.0); "
        "signed by 'SoraLike Signer', trusted"
    ]


def test_signed_mp4_reads_back_as_ai(mp4: bytes, pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path, "gen.mp4", sign(mp4, "video/mp4", pki))
    s = read_c2pa(path)
    assert s.state == "valid"
    assert s.ai_source_types == ("trainedAlgorithmicMedia",)
    assert s.ai_tools == ("SoraLike/1.0",)  # no softwareAgent: the claim generator made it
    flag = ai_flags(media_path=path, hashtags=["fyp"], caption="")
    assert flag.is_ai
    assert flag.reasons == [AI_REASON_JPEG]


def test_extensionless_media_is_sniffed(mp4: bytes, pki: Pki, tmp_path: Path) -> None:
    path = write(tmp_path, "0123abcd", sign(mp4, "video/mp4", pki))
    assert read_c2pa(path).ai_source_types == ("trainedAlgorithmicMedia",)


@pytest.mark.parametrize(
    ("source_type", "is_ai"),
    [
        ("compositeWithTrainedAlgorithmicMedia", True),
        ("algorithmicMedia", True),
        ("digitalCapture", False),
        ("minorHumanEdits", False),
    ],
)
def test_only_generator_source_types_flag_ai(
    source_type: str, is_ai: bool, jpeg: bytes, pki: Pki, tmp_path: Path
) -> None:
    path = write(tmp_path, "x.jpg", sign(jpeg, "image/jpeg", pki, source_type=IPTC + source_type))
    s = read_c2pa(path)
    assert s.state == "valid"
    assert s.source_types == (source_type,)
    flag = ai_flags(media_path=path)
    assert flag.is_ai is is_ai
    if is_ai:
        assert flag.reasons == [AI_REASON_JPEG.replace("trainedAlgorithmicMedia", source_type)]
    else:
        assert flag.reasons == []


def test_no_manifest_is_not_an_error(jpeg: bytes, mp4: bytes, tmp_path: Path) -> None:
    for path in (write(tmp_path, "plain.jpg", jpeg), write(tmp_path, "plain.mp4", mp4)):
        s = read_c2pa(path)
        assert (s.state, s.present, s.error) == ("absent", False, None)
        assert ai_flags(media_path=path).model_dump() == {"is_ai": False, "reasons": []}


# Broken and hostile manifests ----------------------------------------------------------------


def test_corrupt_jumbf_is_reported_as_unreadable(ai_jpeg: bytes, tmp_path: Path) -> None:
    jumb = ai_jpeg.find(b"jumb")
    agent = ai_jpeg.find(b"SoraLike")  # first one: inside the CBOR of the actions assertion
    assert 0 < jumb < agent < ai_jpeg.find(b"c2pa.signature")
    for corrupt in (flip(ai_jpeg, jumb, 4), flip(ai_jpeg, agent + 1)):
        path = write(tmp_path, "corrupt.jpg", corrupt)
        s = read_c2pa(path)
        assert s.state == "unreadable"
        assert s.error
        flag = ai_flags(media_path=path)
        assert not flag.is_ai  # a broken manifest is not evidence of anything
        assert flag.reasons == [f"C2PA manifest could not be read: {s.error}"]


def test_edited_media_leaves_an_invalid_manifest_whose_claim_still_counts(
    ai_jpeg: bytes, mp4: bytes, pki: Pki, tmp_path: Path
) -> None:
    signed_mp4 = sign(mp4, "video/mp4", pki)
    mdat = signed_mp4.find(b"mdat")
    for name, data in (
        ("edited.jpg", flip(ai_jpeg, len(ai_jpeg) - 2000, 8)),  # inside the JPEG scan
        ("edited.mp4", flip(signed_mp4, mdat + 400, 8)),  # inside the video samples
    ):
        path = write(tmp_path, name, data)
        s = read_c2pa(path)
        assert s.state == "invalid", s
        assert any(p.endswith("Hash.mismatch") for p in s.problems), s.problems
        flag = ai_flags(media_path=path)
        assert flag.is_ai
        (reason,) = flag.reasons
        assert reason.startswith("C2PA: trainedAlgorithmicMedia (created with SoraLike/1.0); ")
        assert "manifest INVALID: " in reason and "Hash.mismatch" in reason


def test_random_damage_to_the_manifest_never_raises(ai_jpeg: bytes, tmp_path: Path) -> None:
    rng = random.Random(1234)
    start = ai_jpeg.find(b"jumb") - 8
    end = ai_jpeg.find(b"\xff\xdb")  # the quantisation tables follow the APP11 segments
    assert end > start + 2000
    states: dict[str, int] = {}
    path = tmp_path / "fuzz.jpg"
    for _ in range(150):
        path.write_bytes(flip(ai_jpeg, rng.randrange(start, end - 2), rng.choice([1, 2, 4])))
        s = read_c2pa(path)
        states[s.state] = states.get(s.state, 0) + 1
        assert s.state in {"valid", "invalid", "unreadable", "absent"}
        assert (s.state == "unreadable") == bool(s.error)
        flag = ai_flags(media_path=path, c2pa=s)
        assert all("\n" not in r and len(r) < 400 for r in flag.reasons)
    assert states.get("unreadable", 0) > 0 and states.get("invalid", 0) > 0, states


def test_remote_manifests_are_not_fetched(jpeg: bytes, pki: Pki, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/manifests/gen.c2pa"
    path = write(tmp_path, "remote.jpg", sign(jpeg, "image/jpeg", pki, remote_url=url))
    s = read_c2pa(path)
    assert (s.state, s.remote_url) == ("remote", url)
    assert ai_flags(media_path=path).reasons == [f"C2PA manifest is remote ({url}), not fetched"]


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("empty.mp4", lambda ai, mp4: b""),
        ("noise.mp4", lambda ai, mp4: random.Random(5).randbytes(50_000)),
        ("truncated.jpg", lambda ai, mp4: ai[:1500]),
        ("truncated.mp4", lambda ai, mp4: mp4[:3000]),
        ("text.jpg", lambda ai, mp4: b"not a picture\n" * 100),
    ],
)
def test_files_that_are_not_media_give_a_summary(
    name: str, make: Any, ai_jpeg: bytes, mp4: bytes, tmp_path: Path
) -> None:
    path = write(tmp_path, name, make(ai_jpeg, mp4))
    s = read_c2pa(path)
    assert s.state in {"unsupported", "unreadable", "absent"}
    assert not ai_flags(media_path=path).is_ai


def test_reading_is_cut_off_at_the_byte_budget(
    mp4: bytes, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "gen.mp4", sign(mp4, "video/mp4", pki))
    assert read_c2pa(path).state == "valid"
    monkeypatch.setattr(provenance, "READ_BUDGET_FACTOR", 0)
    monkeypatch.setattr(provenance, "READ_BUDGET_SLACK", 20_000)  # < one pass over the file
    s = read_c2pa(path)
    assert (s.state, s.error) == ("unreadable", "manifest asked for too much reading")


def test_bad_paths_and_trust_anchors_are_input_errors(jpeg: bytes, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read C2PA"):
        read_c2pa(tmp_path / "missing.mp4")
    with pytest.raises(InputError, match="not a regular file"):
        read_c2pa(tmp_path)
    with pytest.raises(InputError, match="C2PA reader settings rejected"):
        read_c2pa(write(tmp_path, "plain.jpg", jpeg), trust_anchors="not a PEM bundle")


def test_summary_round_trips_through_json(ai_jpeg: bytes, tmp_path: Path) -> None:
    s = read_c2pa(write(tmp_path, "gen.jpg", ai_jpeg))
    stored = json.loads(json.dumps(s.to_dict()))  # what Media.c2pa holds
    assert stored["present"] and stored["valid"] and stored["is_ai"]
    assert C2PASummary.from_dict(stored) == s
    assert ai_flags(c2pa=stored).reasons == [AI_REASON_JPEG]
    junk = {"state": "valid\x1b[2J", "ai_source_types": "notalist", "manifests": "3", "x": 1}
    assert C2PASummary.from_dict(junk) == C2PASummary(state="valid [2J")


# Label, hashtags, caption --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "reasons"),
    [
        ({}, []),
        (
            {"ai_label": "Creator labeled as AI-generated", "is_ai_labelled": True},
            ["platform label: AI-generated ('Creator labeled as AI-generated')"],
        ),
        ({"is_ai_labelled": True}, ["platform label: AI-generated"]),
        ({"hashtags": ["#Sora", "fyp", "bridgerton"]}, ["hashtag #sora"]),
        ({"hashtags": ["#AI_Video", "Veo3", "#veo3"]}, ["hashtag #aivideo", "hashtag #veo3"]),
        ({"hashtags": ["＃ＳＯＲＡ"]}, ["hashtag #sora"]),
        ({"hashtags": ["runway", "fashionweek"]}, []),
        (
            {"caption": "Queen Charlotte but made with Runway"},
            ["caption mentions 'made with Runway'"],
        ),
        (
            {"caption": "created using Google Veo 3!"},
            ["caption mentions 'created using Google Veo 3'"],
        ),
        (
            {"caption": "Midjourney stills + Kling AI"},
            ["caption mentions 'Midjourney'", "caption mentions 'Kling AI'"],
        ),
        ({"caption": "this is AI-generated, obviously"}, ["caption mentions 'AI-generated'"]),
        ({"caption": "made with So\u200bra"}, ["caption mentions 'made with Sora'"]),
        ({"caption": "ｍａｄｅ ｗｉｔｈ ｓｏｒａ"}, ["caption mentions 'made with sora'"]),
        ({"caption": "the best scene #Bridgerton #sora"}, ["hashtag #sora"]),
        ({"caption": "lo veo y no lo creo"}, []),
        ({"caption": "runway looks from Paris, my friend Sora and a pika pika"}, []),
        ({"caption": "Stable-Diffusion edit"}, ["caption mentions 'Stable-Diffusion'"]),
    ],
)
def test_label_hashtag_and_caption_reasons(kwargs: dict[str, Any], reasons: list[str]) -> None:
    flag = ai_flags(media_path=None, **kwargs)
    assert flag.reasons == reasons
    assert flag.is_ai is bool(reasons)


def test_every_kind_of_reason_together(ai_jpeg: bytes, tmp_path: Path) -> None:
    flag = ai_flags(
        media_path=write(tmp_path, "gen.jpg", ai_jpeg),
        ai_label="AI-generated",
        is_ai_labelled=True,
        hashtags=["#sora"],
        caption="made with Sora #sora",
    )
    assert flag.reasons == [
        AI_REASON_JPEG,
        "platform label: AI-generated ('AI-generated')",
        "hashtag #sora",
        "caption mentions 'made with Sora'",
    ]


def test_hostile_caption_and_hashtags() -> None:
    rng = random.Random(7)
    noise = "".join(chr(rng.randrange(0, 0x3000)) for _ in range(99_000))
    caption = noise + "\x00\x1b[31m\u202e made with Kling \x07" + "\n" * 1000
    tags = [noise[i : i + 300] for i in range(0, 30_000, 300)] + ["#Kling\x00"]
    flag = ai_flags(media_path=None, caption=caption, hashtags=tags, ai_label="\x1b]0;pwn\x07 AI")
    assert flag.is_ai
    assert "caption mentions 'made with Kling'" in flag.reasons
    assert "hashtag #kling" in flag.reasons
    assert "platform label: AI-generated (']0;pwn AI')" in flag.reasons
    for reason in flag.reasons:
        assert len(reason) <= 300
        assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in reason), reason
    assert ai_flags(caption="\x00" * 100_000, hashtags=["#"] * 10_000).reasons == []


def test_vocabulary_is_normalised_and_unambiguous() -> None:
    seen: dict[str, str] = {}
    for tool in (*AI_TOOLS, GENERIC_AI):
        for tag in tool.hashtags:
            assert normalise_hashtag(tag) == tag, tag
            assert seen.setdefault(tag, tool.name) == tool.name, f"#{tag} names two tools"
    # Ordinary words that are also tool names never count as a bare hashtag or caption word.
    assert "runway" not in seen
