import pytest

from ctxops.detect.pii import PiiFinding, PiiKind, find_pii, redact


def kinds_and_text(text: str) -> list[tuple[PiiKind, str]]:
    return [(f.kind, text[f.start : f.end]) for f in find_pii(text)]


def test_email_phone_card_iban_ssn_ip_are_found_with_their_spans():
    text = (
        "Write to jane.doe+news@example.co.uk or call (415) 555-2671. "
        "Card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00 AND more. "
        "SSN 123-45-6789 from 203.0.113.9."
    )
    assert kinds_and_text(text) == [
        (PiiKind.EMAIL, "jane.doe+news@example.co.uk"),
        (PiiKind.PHONE, "(415) 555-2671"),
        (PiiKind.CREDIT_CARD, "4111 1111 1111 1111"),
        (PiiKind.IBAN, "DE89 3704 0044 0532 0130 00"),
        (PiiKind.US_SSN, "123-45-6789"),
        (PiiKind.IP_ADDRESS, "203.0.113.9"),
    ]


def test_checksums_reject_lookalikes():
    # Luhn fails, IBAN check digits wrong, SSN area 000, loopback address, a version number
    text = "Order 4111 1111 1111 1112, DE00 3704 0044 0532 0130 00, 000-12-3456, 127.0.0.1, v1.2.3.4"
    assert find_pii(text) == []


def test_random_digits_are_not_cards_without_an_issuer_prefix():
    assert find_pii("id 0000000000000000") == []  # passes Luhn, but no network issues 0...


def test_international_phone_numbers_and_region():
    text = "London office: +44 20 7946 0958; Berlin 030 901820"
    assert [k for k, _ in kinds_and_text(text)] == [PiiKind.PHONE]
    german = find_pii(text, region="DE")
    assert [text[f.start : f.end] for f in german] == ["+44 20 7946 0958", "030 901820"]


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="ISO 3166"):
        find_pii("x", region="XX")


def test_kinds_filter_and_overlap_resolution():
    text = "mail 4111111111111111@example.com"
    assert kinds_and_text(text) == [(PiiKind.EMAIL, "4111111111111111@example.com")]
    only_cards = find_pii(text, kinds=[PiiKind.CREDIT_CARD])
    assert [f.kind for f in only_cards] == [PiiKind.CREDIT_CARD]


def test_ipv6_address():
    text = "peer 2001:db8::8a2e:370:7334 connected; time 12:30:45"
    assert kinds_and_text(text) == [(PiiKind.IP_ADDRESS, "2001:db8::8a2e:370:7334")]


def test_redact_replaces_spans_with_kind_placeholders():
    text = "Mail bob@example.org, SSN 123-45-6789."
    assert redact(text, find_pii(text)) == "Mail <EMAIL>, SSN <US_SSN>."


def test_redact_merges_overlapping_findings_and_keeps_text_without_findings():
    text = "abcdefgh"
    overlapping = [PiiFinding(1, 4, PiiKind.EMAIL), PiiFinding(3, 6, PiiKind.PHONE)]
    assert redact(text, overlapping) == "a<EMAIL>gh"
    assert redact(text, []) == text


def test_text_without_personal_data():
    prose = "The quick brown fox jumps over the lazy dog 3 times in 2024."
    assert find_pii(prose) == []


def test_spans_are_exact_anywhere_in_a_long_text():
    filler = "The river pilot kept the ledger of every shipment for nearly twenty years. " * 2000
    pieces = ["x@y.io", "(415) 555-2671", "4111 1111 1111 1111", "123-45-6789", "203.0.113.9", "2001:db8::1"]
    text = filler
    for piece in pieces:
        text += f"{piece} {filler}"
    found = [text[f.start : f.end] for f in find_pii(text)]
    assert found == pieces
