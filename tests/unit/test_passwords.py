"""The password grammar (gateway.message.passwords): each form, false friends, masking."""

from __future__ import annotations

import pytest

from gateway.message.passwords import MASK, Candidate, find, mask


@pytest.mark.parametrize(("text", "expected"), [
    ("Kata laluan: Rahsia#2025", ["Rahsia#2025"]),
    ("KATA LALUAN : Q1w2e3", ["Q1w2e3"]),
    ("kata-laluan=abc", ["abc"]),
    ("Katalaluan = abc123", ["abc123"]),
    ("katalaluan:abc123", ["abc123"]),
    ("Password: S3cret!", ["S3cret!", "S3cret"]),
    ("PASSWORD - S3cret", ["S3cret"]),
    ("passwd: S3cret", ["S3cret"]),
    ("pwd X9y8", ["X9y8"]),
    ("PWD: X9y8", ["X9y8"]),
    ("kata laluan fail ini ialah Bajet2025", ["Bajet2025"]),
    ("Kata laluan bagi fail tersebut adalah Bajet2025", ["Bajet2025"]),
    ("The password for the attachment is Hunter22", ["Hunter22"]),
    ('Password: "dua perkataan"', ["dua perkataan"]),
    ("Kata laluan: “Petik Dua”", ["Petik Dua"]),
    ("Kata laluan:\n   BarisBaru1", ["BarisBaru1"]),
    # Sentence punctuation may belong to the password or not: both are tried.
    ("Kata laluan: abc123.", ["abc123.", "abc123"]),
    ("Tuan, kata laluan: A1. Password: B2", ["A1.", "A1", "B2"]),
])
def test_each_form_gives_its_candidate(text: str, expected: list[str]) -> None:
    assert [c.password for c in find(text, "body")] == expected


@pytest.mark.parametrize("text", [
    "Kata laluan akan dihantar melalui SMS",
    "Tukar kata laluan anda setiap 90 hari",
    "Fail ini dilindungi kata laluan",
    "password-protected file attached",
    "Please reset your password tomorrow",
    "Passport: A12345678",
    "compassword: x",
    "katalaluannya: x",
    "pwdx 123",
    "forgot password",
    "Kata laluan: " + "x" * 65,  # longer than any password a person types
])
def test_false_friends_give_nothing(text: str) -> None:
    assert find(text, "body") == []


def test_the_password_never_shows_in_repr_or_str() -> None:
    [c] = find("Kata laluan: RahsiaBesar99", "subject")
    assert c == Candidate("subject", "RahsiaBesar99")
    assert "RahsiaBesar99" not in repr(c) and "RahsiaBesar99" not in str(c)
    assert "subject" in repr(c)


def test_mask_hides_values_and_keeps_the_rest() -> None:
    assert mask("SULIT: Minit, kata laluan: abc123") == f"SULIT: Minit, kata laluan: {MASK}"
    assert mask('Password for the file is "dua kata" ok') == \
        f'Password for the file is "{MASK}" ok'
    assert mask("pwd X and Password: Y") == f"pwd {MASK} and Password: {MASK}"
    assert mask("Kata laluan akan dihantar") == "Kata laluan akan dihantar"
