"""The usage page's session cookie: it never holds the key, and the server ends it after
COOKIE_SECONDS whatever the browser keeps (a stolen cookie is not good forever)."""

from __future__ import annotations

import time

import pytest

from gateway.api.usage_page import access
from gateway.api.usage_page.access import COOKIE_SECONDS, master_cookie, master_session_valid

MASTER = "sk-master-session-test"


def test_a_fresh_master_cookie_is_valid_and_holds_no_key() -> None:
    cookie = master_cookie(MASTER)
    assert MASTER not in cookie
    assert master_session_valid(cookie, MASTER)
    assert not master_session_valid(cookie, MASTER + "x")  # the key changed


def test_an_old_master_cookie_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    issued = time.time()
    cookie = master_cookie(MASTER)
    monkeypatch.setattr(access.time, "time", lambda: issued + COOKIE_SECONDS + 5)
    assert not master_session_valid(cookie, MASTER)


def test_a_cookie_with_its_time_changed_is_refused() -> None:
    kind, issued, mac = master_cookie(MASTER).split(".")
    forged = f"{kind}.{int(issued) + 3600}.{mac}"
    assert not master_session_valid(forged, MASTER)
