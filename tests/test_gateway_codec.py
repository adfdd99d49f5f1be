"""GSM 03.38 codec, UDH and SMPP wire helpers, checked against independent transcriptions
(smpplib's GSM table and PDU parser, the segment counter's tables)."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smpplib import client as smpp_client
from smpplib import gsm as smpplib_gsm
from smpplib import smpp as smpplib_smpp

from core.gateways import gsm_codec, smpp_wire
from core.gateways.smpp import _decode_text
from core.gateways.udh import build_udh, split_udh

GSM_TEXT = st.text(alphabet=sorted(gsm_codec.GSM7_CHARS), max_size=200)


def test_basic_alphabet_matches_smpplibs_table_code_for_code() -> None:
    table = smpplib_gsm.GSM_CHARACTER_TABLE  # uses "`" as filler, also at 0x5F (really §)
    for code in range(128):
        ch = table[code]
        if code == gsm_codec.ESC or ch == "`":
            continue
        assert gsm_codec.encode(ch) == bytes([code]), (hex(code), ch)
    for code in range(128, 256):  # smpplib's second half: the extension table
        ch = table[code]
        if ch != "`":
            assert gsm_codec.encode(ch) == bytes([gsm_codec.ESC, code - 128]), ch


def test_known_codes() -> None:
    assert gsm_codec.encode("§") == b"\x5f"
    assert gsm_codec.encode("@£$") == b"\x00\x01\x02"
    assert gsm_codec.encode("€") == b"\x1b\x65"
    assert gsm_codec.encode("{}[]~\\|^\f") == (
        b"\x1b\x28\x1b\x29\x1b\x3c\x1b\x3e\x1b\x3d\x1b\x2f\x1b\x40\x1b\x14\x1b\x0a"
    )
    assert gsm_codec.encode("Hello") == b"Hello"
    assert gsm_codec.encode("ÄÖÑÜ§¿äöñüà") == bytes(
        [0x5B, 0x5C, 0x5D, 0x5E, 0x5F, 0x60, 0x7B, 0x7C, 0x7D, 0x7E, 0x7F]
    )
    assert gsm_codec.septets("a€") == 3


def test_national_single_shift_tables() -> None:
    assert gsm_codec.encode("ş", "turkish") == b"\x1b\x73"
    assert gsm_codec.encode("Ğİ", "turkish") == b"\x1b\x47\x1b\x49"
    assert gsm_codec.encode("á", "spanish") == b"\x1b\x61"
    assert gsm_codec.encode("ã", "portuguese") == b"\x1b\x7b"
    assert gsm_codec.encode("ç", "spanish") == b"\x1b\x09"
    assert gsm_codec.decode(b"\x1b\x73", "turkish") == "ş"
    assert gsm_codec.NATIONAL_LANGUAGE_IDS == {"turkish": 1, "spanish": 2, "portuguese": 3}
    with pytest.raises(gsm_codec.GsmEncodeError):
        gsm_codec.encode("ş")  # not in the default extension table
    with pytest.raises(ValueError, match="unknown GSM shift table"):
        gsm_codec.encode("a", "klingon")


def test_agrees_with_the_segment_counters_tables() -> None:
    """The encoder and core.segments must agree on what is GSM-7, or a part counted as
    GSM-7 would be refused at submit."""
    tables = pytest.importorskip("core.gsm_tables")
    assert frozenset(gsm_codec.GSM7_CHARS) - tables.GSM_EXTENSION == tables.GSM_BASIC
    assert tables.GSM_EXTENSION | tables.GSM_BASIC == gsm_codec.GSM7_CHARS
    for name, codes in tables.NATIONAL_SHIFT_CODES.items():
        for code, ch in codes.items():
            encoded = gsm_codec.encode(ch, name)
            if ch not in tables.GSM_BASIC:
                assert encoded == bytes([gsm_codec.ESC, code]), (name, ch)
    assert dict(tables.NATIONAL_LANGUAGE_IDS) == dict(gsm_codec.NATIONAL_LANGUAGE_IDS)


def test_a_character_outside_the_alphabet_is_named_with_its_position() -> None:
    with pytest.raises(gsm_codec.GsmEncodeError) as err:
        gsm_codec.encode("Hi `there`")
    assert err.value.position == 3 and "U+0060" in str(err.value)
    assert not gsm_codec.is_gsm7("Привет") and gsm_codec.is_gsm7("Hello €")
    with pytest.raises(gsm_codec.GsmEncodeError):
        gsm_codec.encode("\x1b")  # the escape itself is not a character


@settings(max_examples=200, deadline=None)
@given(GSM_TEXT)
def test_round_trip_default_alphabet(text: str) -> None:
    assert gsm_codec.decode(gsm_codec.encode(text)) == text


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(gsm_codec.SHIFT_TABLES), st.data())
def test_round_trip_with_a_shift_table(shift: str, data: st.DataObject) -> None:
    chars = sorted(gsm_codec.GSM7_CHARS - {"€"} | set("ĞİŞçğışáíóúÁÍÓÚêôÔÁãõâÂÊÀ"))
    text = data.draw(
        st.text(alphabet=[c for c in chars if gsm_codec.is_gsm7(c, shift)], max_size=100)
    )
    assert gsm_codec.decode(gsm_codec.encode(text, shift), shift) == text


def test_udh_concatenation_and_shift_elements() -> None:
    assert build_udh(ref=0x2A, total=3, seq=2) == bytes([5, 0, 3, 0x2A, 3, 2])
    assert build_udh() == b""
    both = build_udh(ref=7, total=2, seq=1, national_language=1)
    assert both == bytes([8, 0, 3, 7, 2, 1, 0x24, 1, 1])
    udh, payload = split_udh(both + b"text")
    assert (udh.ref, udh.total, udh.seq, udh.national_language, payload) == (7, 2, 1, 1, b"text")
    with pytest.raises(ValueError):
        build_udh(ref=300, total=2, seq=1)
    with pytest.raises(ValueError):
        build_udh(ref=1, total=2, seq=3)
    with pytest.raises(ValueError):
        split_udh(bytes([9, 0, 3]))


def test_packed_submit_sm_reads_back_identically_with_smpplib() -> None:
    pdu = smpp_wire.submit_sm(
        1234,
        source_addr="Studio",
        source_ton=5,
        source_npi=0,
        destination_addr="31612345678",
        dest_ton=1,
        dest_npi=1,
        short_message=build_udh(ref=9, total=2, seq=1) + b"Hello",
        esm_class=0x40,
        data_coding=8,
        registered_delivery=1,
        service_type="CMT",
    )
    parsed = smpplib_smpp.parse_pdu(
        pdu, client=smpp_client.Client("127.0.0.1", 1, allow_unknown_opt_params=True)
    )
    assert parsed.command == "submit_sm" and parsed.sequence == 1234
    assert parsed.length == len(pdu)
    assert parsed.source_addr == b"Studio" and parsed.destination_addr == b"31612345678"
    assert (parsed.source_addr_ton, parsed.source_addr_npi) == (5, 0)
    assert (parsed.dest_addr_ton, parsed.dest_addr_npi) == (1, 1)
    assert parsed.esm_class == 0x40 and parsed.data_coding == 8
    assert parsed.registered_delivery == 1 and parsed.service_type == b"CMT"
    assert parsed.short_message == bytes([5, 0, 3, 9, 2, 1]) + b"Hello"
    with pytest.raises(ValueError, match="exceeds 254"):
        smpp_wire.submit_sm(
            1,
            source_addr="a",
            source_ton=0,
            source_npi=0,
            destination_addr="1",
            dest_ton=1,
            dest_npi=1,
            short_message=b"x" * 255,
        )
    with pytest.raises(ValueError, match="longer than 20"):
        smpp_wire.submit_sm(
            1,
            source_addr="a",
            source_ton=0,
            source_npi=0,
            destination_addr="1" * 21,
            dest_ton=1,
            dest_npi=1,
            short_message=b"x",
        )


def test_responses_and_status_classification() -> None:
    raw = struct.pack(">IIII", 25, smpp_wire.SUBMIT_SM_RESP, 0, 7) + b"0000000A\0"
    assert smpp_wire.submit_sm_resp_id(raw) == "0000000A"
    assert smpp_wire.submit_sm_resp_id(struct.pack(">IIII", 16, 0x80000004, 0x58, 7)) is None
    assert (
        smpp_wire.deliver_sm_resp(9, 0x64) == struct.pack(">IIII", 17, 0x80000005, 0x64, 9) + b"\0"
    )
    assert smpp_wire.classify_status(0) == "accepted"
    assert smpp_wire.classify_status(0x58) == "throttled"
    assert smpp_wire.classify_status(0x14) == "throttled"
    assert smpp_wire.classify_status(0x08) == "transient"
    assert smpp_wire.classify_status(0x0B) == "permanent"
    assert smpp_wire.status_text(0x0B).startswith("ESME_RINVDSTADR (0x0000000B)")
    assert "vendor-specific" in smpp_wire.status_text(0x401)


STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2611242200 done date:2611242201 "
    "stat:DELIVRD err:000 text:Hello world"
)


def test_standard_receipt_text_is_parsed() -> None:
    f = smpp_wire.parse_receipt_text(STANDARD)
    assert f["id"] == "0123456789" and f["stat"] == "DELIVRD" and f["err"] == "000"
    assert f["submit date"] == "2611242200" and f["done date"] == "2611242201"
    assert f["text"] == "Hello world"
    r = smpp_wire.delivery_report(STANDARD)
    assert r is not None and r.provider_id == "0123456789" and r.state == "delivered"
    assert r.reason is None and r.at == datetime(2026, 11, 24, 22, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", "delivered"),
        ("UNDELIV", "undelivered"),
        ("EXPIRED", "expired"),
        ("REJECTD", "failed"),
        ("DELETED", "failed"),
        ("ACCEPTD", "enroute"),
        ("UNKNOWN", "unknown"),
        ("", "unknown"),
    ],
)
def test_receipt_states(stat: str, state: str) -> None:
    r = smpp_wire.delivery_report(STANDARD.replace("DELIVRD", stat))
    assert r is not None and r.state == state


def test_receipt_tlvs_win_over_the_text() -> None:
    undeliv = STANDARD.replace("DELIVRD", "UNDELIV").replace("err:000", "err:001")
    r = smpp_wire.delivery_report(
        undeliv, receipted_message_id="ABC\0", message_state=5, network_error=bytes([3, 0, 27])
    )
    assert r is not None and r.provider_id == "ABC" and r.state == "undelivered"
    assert r.reason == "err:001 GSM network error 27"
    r2 = smpp_wire.delivery_report(STANDARD, message_state=3)
    assert r2 is not None and r2.state == "expired"
    assert smpp_wire.delivery_report("stat:DELIVRD") is None  # no id at all
    odd = smpp_wire.delivery_report("ID:77 Stat:undeliv Err:12")
    assert odd is not None and odd.provider_id == "77" and odd.state == "undelivered"


def test_mo_text_decoding_by_data_coding() -> None:
    assert _decode_text(0, gsm_codec.encode("STOP €"), None) == "STOP €"
    assert _decode_text(8, "Стоп".encode("utf-16-be"), None) == "Стоп"
    assert _decode_text(3, "Arrêt".encode("latin-1"), None) == "Arrêt"
    assert _decode_text(0xF0, gsm_codec.encode("Hi"), None) == "Hi"
    assert _decode_text(0, b"\x1b\x73", "turkish") == "ş"


RECEIPT_KEYS = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err")
RECEIPT_WORD = st.text(alphabet="0123456789ABCDEFabcdef-_", max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    values=st.fixed_dictionaries({
        "id": RECEIPT_WORD, "sub": RECEIPT_WORD, "dlvrd": RECEIPT_WORD,
        "submit date": RECEIPT_WORD,
        "done date": st.sampled_from(["2611242201", "261124220159", "", "26112422"]),
        "stat": st.sampled_from(["DELIVRD", "UNDELIV", "EXPIRED", "REJECTD", "ACCEPTD",
                                 "UNKNOWN", "", "DELIVERED", "FAILD"]),
        "err": st.sampled_from(["000", "001", "0", "", "12"]),
    }),
    rid=st.none() | st.sampled_from(["", "ABC", " XY\0"]),
    state=st.none() | st.integers(0, 9),
    net=st.none() | st.binary(min_size=3, max_size=3),
)
def test_a_receipt_in_the_standard_layout_reads_like_the_same_fields_in_any_layout(
    values: dict[str, str], rid: str | None, state: int | None, net: bytes | None
) -> None:
    """The standard layout is read with one regular expression (receipts come by the
    thousand), any other layout field by field: both must give the same report."""
    standard = " ".join(f"{k}:{values[k]}" for k in RECEIPT_KEYS) + " text:Hello"
    other = "  ".join(f"{k.upper()}: {values[k]}" for k in reversed(RECEIPT_KEYS))
    kw = {"receipted_message_id": rid, "message_state": state, "network_error": net}
    fast = smpp_wire.delivery_report(standard, **kw)  # type: ignore[arg-type]
    slow = smpp_wire.delivery_report(other, **kw)  # type: ignore[arg-type]
    assert (fast is None) == (slow is None)
    if fast is not None and slow is not None:
        assert replace(fast, raw=None) == replace(slow, raw=None)
        assert fast.raw == standard
