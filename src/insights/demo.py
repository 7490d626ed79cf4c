"""Load the demo app through the product's own doors: the CSV import and the webhook's use case."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from import_svc.domain.model import ImportOptions
from insights.demo_data import build_demo
from insights.embedded import Embedded
from insights_common.accounts import Accounts, MemberExists
from insights_common.clock import rfc3339, utc_now

DEMO_APP = "demo"
DEMO_ADMIN = "admin@demo.example"
_BATCH = 1000


@dataclass(frozen=True)
class DemoAccess:
    key: str
    """A new API key of the demo app, for programs."""
    email: str
    password: str
    """A new password of the demo app's admin, for the dashboard."""


async def load_demo(embedded: Embedded, *, data_dir: Path) -> DemoAccess:
    """Load the demo data once per data dir, then give a new API key and admin password."""
    marker = data_dir / "demo.json"
    if not marker.exists():
        data = build_demo(app_id=DEMO_APP, now=utc_now())
        await embedded.imports.run_import(
            app_id=DEMO_APP,
            filename="demo-users.csv",
            chunks=iter([data.csv_text.encode()]),
            options=ImportOptions(),
        )
        # Profile edits in the app come after the import, or the import's snapshot would win.
        edited_at = rfc3339(utc_now(), precision="auto")
        edits = [{**event, "occurred_at": edited_at} for event in data.platform_user_events]
        events = data.template_events + data.notification_events + edits
        for start in range(0, len(events), _BATCH):
            await embedded.ingest.ingest(app_id=DEMO_APP, items=events[start : start + _BATCH])
        marker.write_text(
            json.dumps({"app_id": DEMO_APP, "loaded_at": rfc3339(utc_now(), precision="auto")}),
            encoding="utf-8",
        )
    if await embedded.keys.webhook_secret(DEMO_APP) is None:
        await embedded.keys.rotate_webhook_secret(DEMO_APP)
    accounts = Accounts(embedded.members)
    try:
        password = await accounts.add(DEMO_APP, DEMO_ADMIN, "admin")
    except MemberExists:
        password = await accounts.reset_password(DEMO_APP, DEMO_ADMIN)
    return DemoAccess(await embedded.keys.create_api_key(DEMO_APP), DEMO_ADMIN, password)
