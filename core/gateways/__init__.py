"""SMS gateways: one small protocol (base.Gateway) and a registry that builds the configured
gateway from a URL.

    simulator://?seed=1&rate=5000                      embedded, realistic, deterministic
    smpp://SYSTEM_ID@HOST:PORT?window=50&rate=100       SMPP 3.4 transceiver
    https://api.twilio.com/2010-04-01/Accounts/AC...   Twilio-shaped REST API

Secrets never go into the URL: the SMPP password comes from `SMS_STUDIO_SMPP_PASSWORD`, the
REST token from `SMS_STUDIO_HTTP_TOKEN`, looked up first in the `secrets` mapping the app
passes (Streamlit's st.secrets), then in the environment.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import (
    DELIVERY_STATES,
    SUBMIT_STATUSES,
    Capabilities,
    DeliveryReport,
    DeliveryState,
    Encoding,
    Gateway,
    GatewayError,
    InboundEvent,
    InboundHandler,
    InboundMessage,
    OutboundMessage,
    PartResult,
    SubmitStatus,
    SubmitTotals,
)
from .config import (
    DEFAULT_GATEWAY_URL,
    ENV_GATEWAY,
    ENV_HTTP_TOKEN,
    ENV_SMPP_PASSWORD,
    OPTIONS,
    GatewayConfig,
    default_gateway_url,
    parse_gateway_url,
    redact,
    resolve_secret,
)

__all__ = [
    "DEFAULT_GATEWAY_URL",
    "DELIVERY_STATES",
    "ENV_GATEWAY",
    "ENV_HTTP_TOKEN",
    "ENV_SMPP_PASSWORD",
    "OPTIONS",
    "SUBMIT_STATUSES",
    "Capabilities",
    "DeliveryReport",
    "DeliveryState",
    "Encoding",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "InboundEvent",
    "InboundHandler",
    "InboundMessage",
    "OutboundMessage",
    "PartResult",
    "SubmitStatus",
    "SubmitTotals",
    "build_gateway",
    "default_gateway_url",
    "parse_gateway_url",
    "redact",
]


def build_gateway(
    url: str,
    *,
    secrets: Mapping[str, Any] | None = None,
    clock: Callable[[], float] | None = None,
) -> Gateway:
    """Build the gateway a URL describes (not yet connected).

    `secrets` is looked up before the environment for the password/token. `clock` is
    passed to the simulator (tests); real gateways ignore it. Raises GatewayError for a bad
    URL or a missing secret; the message never contains a secret.
    """
    config = parse_gateway_url(url)
    if config.kind == "simulator":
        from .simulator import SimulatorGateway

        return SimulatorGateway.from_config(config, clock=clock)
    if config.kind == "smpp":
        from .smpp import SmppGateway

        password = resolve_secret(
            ENV_SMPP_PASSWORD, secrets, required_for=f"SMPP gateway {redact(url)!r}"
        )
        return SmppGateway(config, password)
    from .http import HttpGateway

    token = resolve_secret(ENV_HTTP_TOKEN, secrets, required_for=f"HTTP gateway {redact(url)!r}")
    return HttpGateway(config, token)
