"""AS2 (RFC 4130) with trading partners: `from: {as2: {system: acme}}` receives, `to:` sends.

A partner is a system with an `as2:` profile (ids, certificates, algorithms: see `profile`).
`smime` holds the S/MIME parts, `mdn` the receipts, `inbound` the endpoint, `outbound` the sink.
"""

from __future__ import annotations

from adapters.as2 import profile
from adapters.as2.inbound import As2Source
from adapters.as2.outbound import As2Sink
from esb.plugins import AdapterSpec, register

ENDPOINT_SCHEMA = {
    "type": "object",
    "description": "from: the partner's AS2 endpoint POST /as2/<partner>; to: AS2 messages to the partner.",
    "x-esb-source": True,
    "x-esb-sink": True,
    "additionalProperties": False,
    "required": ["system"],
    "properties": {
        "system": {"type": "string", "description": "The trading partner: a system with an as2: profile."},
    },
}


def check_endpoint(endpoint, system: dict | None, base_dir) -> list[str]:
    """The profile's certificate files exist, load and are valid now."""
    return profile.check(system)


register(AdapterSpec(
    name="as2",
    summary="AS2 with a trading partner: signed, encrypted, with a signed receipt (MDN)",
    endpoint_schema=ENDPOINT_SCHEMA,
    system_schema=profile.PROFILE_SCHEMA,
    source_factory=lambda endpoint, system, route: As2Source(profile.load(endpoint.system, system), route),
    sink_factory=lambda endpoint, system: As2Sink(profile.load(endpoint.system, system)),
    check=check_endpoint,
))
