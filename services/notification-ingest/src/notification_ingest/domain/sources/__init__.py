"""The messaging platforms whose own callbacks User Insights takes (docs/sources.md).

Each platform module gives a `Platform`: how its request is authenticated (a `Credential` read
from the headers) and how its body reads as `Callback`s, plus its status table. The rule that turns
callbacks into canonical events is written once, in `translation`.
"""

from __future__ import annotations

from notification_ingest.domain.sources import braze, customerio, knock, sendbird, twilio
from notification_ingest.domain.sources.model import Platform

PLATFORMS: dict[str, Platform] = {
    platform.table.name: platform
    for platform in (
        twilio.PLATFORM,
        knock.PLATFORM,
        customerio.PLATFORM,
        braze.PLATFORM,
        sendbird.PLATFORM,
    )
}

__all__ = ["PLATFORMS", "Platform"]
