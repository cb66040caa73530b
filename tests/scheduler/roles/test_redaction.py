"""Secret values masked by name, longest first, short ones left alone."""

from __future__ import annotations

from scheduler.roles.redaction import Redactor


def test_values_are_masked_by_name_longest_first_and_short_ones_kept() -> None:
    redact = Redactor((("A", "abcd"), ("LONG", "xxabcdxx"), ("PIN", "123")))
    assert redact.text("abcd xxabcdxx 123") == "[redacted:A] [redacted:LONG] 123"
    assert redact.data(b"1abcd2") == b"1[redacted:A]2"
    assert not Redactor((("PIN", "123"),))
    assert Redactor(()).text("nothing") == "nothing"
