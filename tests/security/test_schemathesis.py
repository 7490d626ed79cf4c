"""Schemathesis against the OpenAPI document each mode serves, with a real API key and, for
`POST /events`, a valid signature: no answer may be a server error, and every answer's status,
headers, media type and body must be the ones the document gives for it.

It runs schemathesis's engine (its examples, coverage and fuzzing phases, as `st run` does)
rather than its pytest loader, whose lazy schemas do not run on pytest 9. Examples are bounded
(MAX_EXAMPLES per operation, a fixed seed) so that a mode takes a minute or two.

`positive_data_acceptance` is left out: the document cannot say which strings are cursors this
API gave out, or real dates, so a schema-valid request can rightly be refused with 400; each such
400 must still be a problem the document declares (status_code_conformance and
response_schema_conformance).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest
import requests
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, from_schema
from schemathesis.engine.events import EngineFinished, NonFatalError, ScenarioFinished

from insights_common.auth import sign

if TYPE_CHECKING:
    from tests.conftest import Deployment

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 25
SEED = 20261203
APP = "acme"
EVENTS = "/api/v1/events"
SEEDED_CSV = "user_id,phone_number,nickname\nalex,+14155550171,Alex Kim\nbad id,+1,Nobody\n"
CHECKS_LEFT_OUT = ("positive_data_acceptance",)


class SignedBody(requests.auth.AuthBase):
    """Signs the exact bytes about to be sent as the platform would, so that the webhook's
    parsing is reached and not only its 401."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        request.headers["X-Insights-App"] = APP
        request.headers["X-Insights-Signature"] = sign(self.secret, bytes(raw))
        return request


@dataclass
class Run:
    """What one schemathesis run did: operations, test cases, calls, and what failed."""

    operations: set[str] = field(default_factory=set)
    cases: int = 0
    calls: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[tuple[str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        codes = ", ".join(f"{status}: {n}" for status, n in sorted(self.statuses.items()))
        return (
            f"{len(self.operations)} operations, {self.cases} test cases, {self.calls} calls"
            f" ({codes}); {len(self.failures)} failures, {len(self.errors)} errors"
        )

    def report(self) -> str:
        lines = [self.summary()]
        lines += [f"{label}: {title}\n{detail}" for (label, title), detail in self.failures.items()]
        lines += self.errors
        return "\n\n".join(lines)


def fuzz(url: str, *, key: str, secret: str) -> Run:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {key}"},
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {name: {"enabled": False} for name in CHECKS_LEFT_OUT},
            # One worker: hypothesis describes lambdas with ast.parse, which CPython 3.11 cannot
            # do in two threads at once ("AST constructor recursion depth mismatch", gh-106905).
            "workers": 1,
        }
    )
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json", config=config)
    schema.auth.set_from_requests(SignedBody(secret)).apply_to(path=EVENTS)
    run = Run()
    for event in from_schema(schema).execute():
        if isinstance(event, ScenarioFinished):
            recorder = event.recorder
            run.operations.add(recorder.label)
            run.cases += len(recorder.cases)
            run.calls += len(recorder.interactions)
            for interaction in recorder.interactions.values():
                if interaction.response is not None:
                    run.statuses[interaction.response.status_code] += 1
            for checks in recorder.checks.values():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        failure = check.failure_info.failure
                        run.failures.setdefault(
                            (recorder.label, failure.title), check.failure_info.code_sample
                        )
        elif isinstance(event, NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, EngineFinished):
            break
    return run


@pytest.fixture
def served(deployment: Deployment) -> tuple[Deployment, str, str]:
    """A deployment with a key, a webhook secret and an import, so that some ids exist."""
    key = deployment.cli("keys", "create", "--app", APP)
    secret = deployment.cli("webhooks", "secret", "--app", APP)
    answer = requests.post(
        f"{deployment.url}/api/v1/imports",
        files={"file": ("users.csv", SEEDED_CSV.encode(), "text/csv")},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    return deployment, key, secret


def test_every_operation_answers_as_its_document_says(
    served: tuple[Deployment, str, str], request: pytest.FixtureRequest
) -> None:
    deployment, key, secret = served
    run = fuzz(deployment.url, key=key, secret=secret)
    request.node.user_properties.append(("schemathesis", run.summary()))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"schemathesis {deployment.kind}: {run.summary()}")
    assert len(run.operations) >= 11, run.report()
    assert run.calls > 0, run.report()
    assert not run.failures and not run.errors, run.report()
