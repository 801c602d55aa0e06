"""Caller number normalisation: the first gate for hostile input."""

import pytest

from qmt.rules import normalise_number

SAME_NUMBER = ["+79112223344", "79112223344", "89112223344", "9112223344"]


@pytest.mark.parametrize("raw", SAME_NUMBER)
def test_the_four_spellings_of_a_russian_mobile_are_one_number(raw):
    assert normalise_number(raw) == "79112223344"


@pytest.mark.parametrize("raw, expected", [
    ("+380501234567", "380501234567"),   # another country, already international
    ("380501234567", "380501234567"),    # 12 digits: neither national nor trunk form
    ("+89112223344", "89112223344"),     # '+' means international: no trunk rewrite
    ("123456", "123456"),                # shortest accepted
    ("123456789012345", "123456789012345"),  # longest accepted (E.164)
    ("84951234567", "74951234567"),      # trunk prefix on a landline too
])
def test_other_plausible_numbers_are_kept_or_rewritten_by_the_rules(raw, expected):
    assert normalise_number(raw) == expected


HOSTILE = [
    "", "+", "++79112223344", "anonymous", "unknown", "Anonymous", "restricted",
    "7911222334a", "7911 222 3344", " 79112223344", "79112223344 ", "7911-222-33-44",
    "79112223344@evil", "Local/79112223344@outbound-allroutes/n", "7911/2223344",
    "7911,2223344", "7911;2223344", "7911&2223344", '"79112223344', "'79112223344",
    "$79112223344", "${SHELL(id)}", "{79112223344}", "7911222334\n4",
    "' OR '1'='1", "79112223344' --", "7911222\x003344",
    "٧٩١١٢٢٢٣٣٤٤",                      # Arabic-Indic digits: isdigit() says yes
    "７９１１２２２３３４４",                # full-width digits
    "7911222334४",                       # one Devanagari digit at the end
    "12345",                             # fewer than 6 digits
    "1234567890123456",                  # more than 15 digits
    "+1234567890123456",
    "0x79112223344",
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_anything_else_is_refused(raw):
    assert normalise_number(raw) is None


def test_non_strings_are_refused():
    assert normalise_number(None) is None
    assert normalise_number(79112223344) is None


def test_the_rules_follow_the_configuration():
    # A German-style setup: country 49, trunk 0, 11 national digits.
    assert normalise_number("015112345678", "49", "0", 11) == "4915112345678"
    assert normalise_number("15112345678", "49", "0", 11) == "4915112345678"
    # No trunk prefix configured: an 11-digit number starting with 8 stays.
    assert normalise_number("89112223344", "7", "", 10) == "89112223344"


@pytest.mark.parametrize("typed", ["7911\n2223344", "79112223344\n", "7911\t222 33 44", "\n79112223344",
                                   "7911\r2223344", "7911\x0b2223344"])
def test_a_typed_number_with_a_control_character_is_refused(typed):
    """Only a space, brackets, '-' and '.' separate digits an admin types: a
    newline or tab is a mistake (issue 14, INFO), never silently dropped."""
    from qmt.rules import typed_number
    assert typed_number(typed) is None
    assert typed_number(typed.replace("\n", " ").replace("\t", " ").replace("\r", " ").replace("\x0b", " ")
                        .strip()) == "79112223344"
