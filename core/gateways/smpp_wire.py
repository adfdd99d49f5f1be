"""SMPP 3.4 wire helpers: PDU framing, the hot PDUs, status codes, delivery receipts.

smpplib does the bind. Everything exchanged by the thousand is packed and parsed here with
`struct`: submit_sm, the fixed-layout responses, and the deliver_sm / data_sm that carry
receipts and replies. smpplib's generic PDU codec costs ~100 µs to build a submit_sm and
~50 µs to parse a receipt, which would cap a client at a few thousand parts per second;
these take a few microseconds. The tests check every packed PDU against smpplib's parser
and smpp34's server, and `parse_deliver` against smpplib's parser (`parse_deliver_smpplib`).
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, NamedTuple

from smpplib import consts as _consts

from .base import DeliveryReport, DeliveryState

# command ids
GENERIC_NACK = 0x80000000
SUBMIT_SM = 0x00000004
SUBMIT_SM_RESP = 0x80000004
DELIVER_SM = 0x00000005
DELIVER_SM_RESP = 0x80000005
UNBIND = 0x00000006
UNBIND_RESP = 0x80000006
ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015
DATA_SM = 0x00000103
DATA_SM_RESP = 0x80000103
ALERT_NOTIFICATION = 0x00000102

# command_status values used by the gateway
ESME_ROK = 0x00
ESME_RINVCMDID = 0x03
ESME_RSYSERR = 0x08
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64

#: "ESME_RTHROTTLED" etc. by value, from smpplib's table.
STATUS_NAMES: dict[int, str] = {
    value: name.removeprefix("SMPP_")
    for name, value in vars(_consts).items()
    if name.startswith("SMPP_ESME_") and isinstance(value, int)
}

#: Refusals worth retrying later: the provider is busy or had a hiccup.
THROTTLE_STATUSES = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})
TRANSIENT_STATUSES = frozenset(
    {
        ESME_RSYSERR,
        0x04,  # ESME_RINVBNDSTS: not bound (yet/any more); a new bind fixes it
        0x45,  # ESME_RSUBMITFAIL: generic submit failure, usually temporary
        ESME_RX_T_APPN,
        0xFE,  # ESME_RDELIVERYFAILURE
        0xFF,  # ESME_RUNKNOWNERR
    }
)


def status_text(status: int) -> str:
    """E.g. "ESME_RINVDSTADR (0x0000000B): Invalid Destination Address"."""
    name = STATUS_NAMES.get(status, "vendor-specific" if 0x400 <= status <= 0x4FF else "unknown")
    desc = _consts.DESCRIPTIONS.get(status)
    return f"{name} (0x{status:08X})" + (f": {desc}" if desc else "")


def classify_status(status: int) -> str:
    """SubmitStatus of a submit_sm_resp / generic_nack command_status."""
    if status == ESME_ROK:
        return "accepted"
    if status in THROTTLE_STATUSES:
        return "throttled"
    if status in TRANSIENT_STATUSES:
        return "transient"
    return "permanent"


_HEADER = struct.Struct(">IIII")


def header(raw: bytes | bytearray | memoryview) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number)."""
    return _HEADER.unpack_from(raw, 0)  # type: ignore[return-value]


def response(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return _HEADER.pack(16 + len(body), command_id, status, sequence) + body


def enquire_link(sequence: int) -> bytes:
    return _HEADER.pack(16, ENQUIRE_LINK, 0, sequence)


def unbind(sequence: int) -> bytes:
    return _HEADER.pack(16, UNBIND, 0, sequence)


def deliver_sm_resp(sequence: int, status: int = ESME_ROK, *, data_sm: bool = False) -> bytes:
    # message_id is unused in deliver_sm_resp and set to NULL (one octet).
    return response(DATA_SM_RESP if data_sm else DELIVER_SM_RESP, status, sequence, b"\0")


def _cstr(value: str, limit: int, what: str) -> bytes:
    raw = value.encode("ascii")
    if len(raw) >= limit:
        raise ValueError(f"{what} {value!r} is longer than {limit - 1} characters")
    return raw + b"\0"


def submit_sm(
    sequence: int,
    *,
    source_addr: str,
    source_ton: int,
    source_npi: int,
    destination_addr: str,
    dest_ton: int,
    dest_npi: int,
    short_message: bytes,
    esm_class: int = 0,
    data_coding: int = 0,
    registered_delivery: int = 0,
    service_type: str = "",
    validity_period: str = "",
) -> bytes:
    """A complete submit_sm PDU. Raises ValueError for a field SMPP cannot carry."""
    head = submit_sm_head(
        source_addr=source_addr, source_ton=source_ton, source_npi=source_npi,
        dest_ton=dest_ton, dest_npi=dest_npi, service_type=service_type,
    )  # fmt: skip
    return submit_sm_from_head(
        sequence, head, destination_addr, short_message, esm_class=esm_class,
        data_coding=data_coding, registered_delivery=registered_delivery,
        validity_period=validity_period,
    )  # fmt: skip


def submit_sm_head(
    *,
    source_addr: str,
    source_ton: int,
    source_npi: int,
    dest_ton: int,
    dest_npi: int,
    service_type: str = "",
) -> bytes:
    """The fields of a submit_sm before destination_addr: the same for every message from
    one sender, so a client can build them once per sender (`submit_sm_from_head`)."""
    return b"".join(
        (
            _cstr(service_type, 6, "service_type"),
            bytes((source_ton, source_npi)),
            _cstr(source_addr, 21, "source address"),
            bytes((dest_ton, dest_npi)),
        )
    )


def submit_sm_from_head(
    sequence: int,
    head: bytes,
    destination_addr: str,
    short_message: bytes,
    *,
    esm_class: int = 0,
    data_coding: int = 0,
    registered_delivery: int = 0,
    validity_period: str = "",
) -> bytes:
    """A complete submit_sm PDU from `submit_sm_head`'s octets and the rest of the fields.
    Raises ValueError for a field SMPP cannot carry."""
    size = len(short_message)
    if size > 254:
        raise ValueError(f"short_message of {size} octets exceeds 254")
    body = b"".join(
        (
            head,
            _cstr(destination_addr, 21, "destination address"),
            # esm_class, protocol_id, priority_flag; schedule_delivery_time: immediate
            bytes((esm_class, 0, 0, 0)),
            _cstr(validity_period, 17, "validity_period") if validity_period else b"\0",
            bytes((registered_delivery, 0, data_coding, 0, size)),
            short_message,
        )
    )
    return _HEADER.pack(16 + len(body), SUBMIT_SM, 0, sequence) + body


def submit_sm_resp_id(raw: bytes) -> str | None:
    """The message_id of a submit_sm_resp (None when the body is empty, as on errors)."""
    body = raw[16:]
    if not body:
        return None
    end = body.find(b"\0")
    value = body if end < 0 else body[:end]
    return value.decode("ascii", errors="replace") or None


# --- delivery receipts ---------------------------------------------------------------------

_RECEIPT_KEYS = re.compile(r"(?i)(?:^|\s)(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:")

_STAT_STATES: dict[str, DeliveryState] = {
    "DELIVRD": "delivered", "DELIVERED": "delivered",
    "EXPIRED": "expired",
    "DELETED": "failed", "REJECTD": "failed", "REJECTED": "failed", "FAILED": "failed",
    "UNDELIV": "undelivered", "UNDELIVERABLE": "undelivered", "UNDELIVERED": "undelivered",
    "ACCEPTD": "enroute", "ACCEPTED": "enroute", "ENROUTE": "enroute", "BUFFRED": "enroute",
    "UNKNOWN": "unknown",
}  # fmt: skip

#: message_state TLV values (SMPP 3.4 section 5.2.28).
MESSAGE_STATES: dict[int, DeliveryState] = {
    1: "enroute", 2: "delivered", 3: "expired", 4: "failed", 5: "undelivered",
    6: "enroute", 7: "unknown", 8: "failed", 9: "failed",
}  # fmt: skip


# The layout nearly every SMSC sends, keys in this order and single spaces: one match
# instead of the general key scan (values without whitespace; anything else falls back).
_STANDARD_RECEIPT = re.compile(
    r"id:(\S*) sub:(\S*) dlvrd:(\S*) submit date:(\S*) done date:(\S*) stat:(\S*) err:(\S*)"
    r"(?: text:(.*))?\Z",
    re.DOTALL,
)
_STANDARD_KEYS = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text")


def parse_receipt_text(text: str) -> dict[str, str]:
    """Fields of the de-facto receipt format (SMPP 3.4 Appendix B):
    ``id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
    err:E text:...``. Keys are lower-case; missing fields are absent; `text` runs to the end.
    """
    m = _STANDARD_RECEIPT.match(text)
    if m is not None:
        fields = dict(zip(_STANDARD_KEYS, m.groups(), strict=True))
        if fields["text"] is None:
            del fields["text"]
        else:
            fields["text"] = fields["text"].strip()
        return fields
    return parse_receipt_text_general(text)


def parse_receipt_text_general(text: str) -> dict[str, str]:
    """`parse_receipt_text` for any key order, case and spacing (the slow path)."""
    fields: dict[str, str] = {}
    matches = list(_RECEIPT_KEYS.finditer(text))
    for i, m in enumerate(matches):
        key = m.group(1).lower()
        end = len(text) if key == "text" or i + 1 == len(matches) else matches[i + 1].start()
        fields.setdefault(key, text[m.end() : end].strip())
        if key == "text":
            break
    return fields


@lru_cache(maxsize=512)
def parse_receipt_date(value: str | None) -> datetime | None:
    """YYMMDDhhmm[ss] as UTC (SMSCs seldom say their zone; UTC is the common setting).

    Cached: receipts arriving together carry the same few minutes, and strptime is slow.
    """
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        return datetime.strptime(
            value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M"
        ).replace(tzinfo=UTC)
    except ValueError:
        return None


def delivery_report(
    text: str,
    *,
    receipted_message_id: str | None = None,
    message_state: int | None = None,
    network_error: bytes | None = None,
) -> DeliveryReport | None:
    """A DeliveryReport from a receipt's text and TLVs (TLVs win), or None without an id."""
    m = _STANDARD_RECEIPT.match(text)  # the common layout: no dict of fields needed
    if m is not None:
        text_id, done, stat_text, err = m.group(1, 5, 6, 7)
    else:
        fields = parse_receipt_text_general(text)
        text_id, done, stat_text, err = (fields.get("id"), fields.get("done date"),
                                         fields.get("stat"), fields.get("err"))  # fmt: skip
    provider_id = (receipted_message_id.strip("\0 ").strip() if receipted_message_id else "") \
        or text_id  # fmt: skip
    if not provider_id:
        return None
    state: DeliveryState | None = None
    if message_state is not None:
        state = MESSAGE_STATES.get(message_state)
    if state is None:
        stat = (stat_text or "").upper()
        state = _STAT_STATES.get(stat)
        if state is None:
            state = next(
                (v for k, v in _STAT_STATES.items() if stat.startswith(k[:5]) and stat), "unknown"
            )
    if state == "delivered" and not network_error and not (err and err.strip("0")):
        return DeliveryReport(provider_id, state, None, parse_receipt_date(done), text)
    reason_bits = []
    if err and err.strip("0"):
        reason_bits.append(f"err:{err}")
    if network_error and len(network_error) == 3:
        kind = {1: "ANSI-136", 2: "IS-95", 3: "GSM"}.get(network_error[0], str(network_error[0]))
        code = int.from_bytes(network_error[1:], "big")
        if code:
            reason_bits.append(f"{kind} network error {code}")
    if state != "delivered" and not reason_bits:
        reason_bits.append(f"stat:{stat_text if stat_text is not None else '?'}")
    return DeliveryReport(
        provider_id=provider_id,
        state=state,
        reason=" ".join(reason_bits) or None,
        at=parse_receipt_date(done),
        raw=text,
    )


class DeliverFields(NamedTuple):
    """What the gateway needs from a parsed deliver_sm / data_sm (a named tuple: one is
    built per receipt, thousands a second)."""

    command_id: int
    sequence: int
    source_addr: str
    source_ton: int
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None
    message_state: int | None
    network_error: bytes | None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).split(b"\0", 1)[0].decode("latin-1")
    return str(value)


TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_NETWORK_ERROR_CODE = 0x0423
TLV_MESSAGE_PAYLOAD = 0x0424
TLV_MESSAGE_STATE = 0x0427
_TLV = struct.Struct(">HH")


def parse_deliver(raw: bytes) -> DeliverFields:
    """Parse a deliver_sm or data_sm (SMPP 3.4 4.6.1 / 4.7.1); unknown TLVs are skipped.

    Raises ValueError for a PDU that does not hold together (a C-string without its NUL,
    a short_message or TLV running past the end, another command).
    """
    try:
        length, command_id, _, sequence = _HEADER.unpack_from(raw, 0)
        end = len(raw)
        if length != end:
            raise ValueError(f"command_length {length} but {end} octets")
        find = raw.find
        # service_type, source_addr_ton, source_addr_npi, source_addr
        pos = find(b"\0", 16, end) + 1
        if not pos:
            raise ValueError("service_type has no terminating NUL")
        source_ton = raw[pos]
        pos += 2
        stop = find(b"\0", pos, end)
        if stop < 0:
            raise ValueError("source_addr has no terminating NUL")
        source_addr = raw[pos:stop].decode("latin-1")
        pos = stop + 3  # dest_addr_ton, dest_addr_npi
        stop = find(b"\0", pos, end)
        if stop < 0:
            raise ValueError("destination_addr has no terminating NUL")
        destination_addr = raw[pos:stop].decode("latin-1")
        pos = stop + 1
        if command_id == DELIVER_SM:
            esm_class = raw[pos]
            pos += 3  # esm_class, protocol_id, priority_flag
            for what in ("schedule_delivery_time", "validity_period"):
                pos = find(b"\0", pos, end) + 1
                if not pos:
                    raise ValueError(f"{what} has no terminating NUL")
            # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
            data_coding = raw[pos + 2]
            sm_length = raw[pos + 4]
            pos += 5
            short_message = raw[pos : pos + sm_length]
            pos += sm_length
            if pos > end:
                raise ValueError(f"short_message of {sm_length} octets runs past the PDU")
        elif command_id == DATA_SM:
            esm_class = raw[pos]
            data_coding = raw[pos + 2]  # after registered_delivery
            pos += 3
            short_message = b""
        else:
            raise ValueError(f"command_id 0x{command_id:08X} is not deliver_sm or data_sm")
        rid: str | None = None
        message_state: int | None = None
        network_error: bytes | None = None
        payload = b""
        while pos < end:
            tag, size = _TLV.unpack_from(raw, pos)
            pos += 4
            value = raw[pos : pos + size]
            pos += size
            if pos > end:
                raise ValueError(f"TLV 0x{tag:04X} of {size} octets runs past the PDU")
            if tag == TLV_RECEIPTED_MESSAGE_ID:
                rid = value.split(b"\0", 1)[0].decode("latin-1") or None
            elif tag == TLV_MESSAGE_STATE:
                message_state = int.from_bytes(value, "big") if value else None
            elif tag == TLV_NETWORK_ERROR_CODE:
                network_error = value or None
            elif tag == TLV_MESSAGE_PAYLOAD:
                payload = value
    except (IndexError, struct.error):
        raise ValueError(f"truncated PDU ({len(raw)} octets)") from None
    return DeliverFields(
        command_id,
        sequence,
        source_addr,
        source_ton,
        destination_addr,
        esm_class,
        data_coding,
        short_message or payload,
        rid,
        message_state,
        network_error,
    )


def parse_deliver_smpplib(raw: bytes, client: Any) -> DeliverFields:
    """`parse_deliver` done by smpplib's generic codec: the reference it is tested against."""
    from smpplib import smpp

    pdu = smpp.parse_pdu(raw, client=client, allow_unknown_opt_params=True)
    _, command_id, _, sequence = header(raw)
    short_message = getattr(pdu, "short_message", None) or b""
    payload = getattr(pdu, "message_payload", None)
    if not short_message and payload:
        short_message = payload
    rid = getattr(pdu, "receipted_message_id", None)
    return DeliverFields(
        command_id=command_id,
        sequence=sequence,
        source_addr=_text(pdu.source_addr),
        source_ton=int(pdu.source_addr_ton or 0),
        destination_addr=_text(pdu.destination_addr),
        esm_class=int(pdu.esm_class or 0),
        data_coding=int(pdu.data_coding or 0),
        short_message=bytes(short_message),
        receipted_message_id=_text(rid) if rid else None,
        message_state=getattr(pdu, "message_state", None),
        network_error=getattr(pdu, "network_error_code", None) or None,
    )
