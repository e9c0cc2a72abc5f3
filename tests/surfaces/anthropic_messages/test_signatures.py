"""Thinking signatures: round trip, tampering, key choice."""

from __future__ import annotations

import pytest

from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner


def test_round_trip() -> None:
    signer = ThinkingSigner(b"secret")
    for text in ("", "plain", "多语言 🙂 text\nwith lines", "x" * 10_000):
        assert signer.verify(text, signer.sign(text))


def test_signatures_are_deterministic_per_key_and_differ_across_keys() -> None:
    a, b = ThinkingSigner(b"one"), ThinkingSigner(b"two")
    assert a.sign("t") == ThinkingSigner(b"one").sign("t")
    assert a.sign("t") != b.sign("t")
    assert not b.verify("t", a.sign("t"))


def test_tampering_is_detected() -> None:
    signer = ThinkingSigner(b"secret")
    signature = signer.sign("the reasoning")
    assert not signer.verify("the reasoning.", signature)
    assert not signer.verify("The reasoning", signature)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    assert not signer.verify("the reasoning", flipped)
    assert not signer.verify("the reasoning", signature[:-2])
    assert not signer.verify("the reasoning", "")
    body = signature.split(".", 1)[1]
    assert not signer.verify("the reasoning", "v0." + body)  # another version prefix
    assert not signer.verify("the reasoning", body)


def test_signatures_are_short_url_safe_text() -> None:
    signature = ThinkingSigner(b"k").sign("abc")
    prefix, _, mac = signature.partition(".")
    assert prefix and len(mac) == 43  # 32 bytes, base64url without padding
    assert set(mac) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_key_choice() -> None:
    configured = ThinkingSigner.from_secrets("shared-secret", "master")
    assert configured.sign("t") == ThinkingSigner(b"shared-secret").sign("t")
    derived = ThinkingSigner.from_secrets(None, "master")
    assert derived.sign("t") == ThinkingSigner.from_secrets(None, "master").sign("t")
    assert derived.sign("t") != ThinkingSigner(b"master").sign("t")  # never the key itself
    assert derived.sign("t") != ThinkingSigner.from_secrets(None, "other").sign("t")
    one, two = ThinkingSigner.from_secrets(None, None), ThinkingSigner.from_secrets(None, None)
    assert one.sign("t") != two.sign("t")  # random per process (per signer)


def test_an_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        ThinkingSigner(b"")
