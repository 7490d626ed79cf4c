"""What an import that fails, falls behind or may not start tells the person who sent it."""

from __future__ import annotations

from datetime import timedelta

from import_svc.domain.model import FileIssue

UPLOAD_CUT_OFF = FileIssue(
    "upload_interrupted",
    "The upload was cut off before the whole file arrived; nothing was imported. Upload the "
    "file again.",
)
INTERRUPTED = FileIssue(
    "interrupted",
    "The import was interrupted (the process stopped) before it finished, and its file was "
    "not kept to resume it; nothing from it was imported. Upload the file again.",
)


def projection_behind(visible: int, total: int, still: timedelta) -> FileIssue:
    return FileIssue(
        "projection_behind",
        f"The users are published, but the projection has not advanced for"
        f" {still.total_seconds():.0f} s: {visible:,} of {total:,} can be found so far. The"
        " import completes when they all can.",
    )


def projection_stalled(visible: int, total: int, still: timedelta) -> FileIssue:
    return FileIssue(
        "projection_stalled",
        f"The {total:,} users were published and kept, but the projection made no progress for"
        f" {still.total_seconds() / 60:.0f} minutes, and only {visible:,} of them can be found."
        " They will appear when the projector (insights-query) catches up; check that it runs.",
    )


STALE = FileIssue(
    "interrupted",
    "The replica running this import stopped answering; nothing from it was imported. Upload "
    "the file again.",
)


def over_budget(budget: timedelta) -> FileIssue:
    return FileIssue(
        "time_budget_exceeded",
        f"Uploading and checking this file took longer than {budget.total_seconds():g} seconds, "
        "the most one import may take; nothing was imported. Upload it again over a faster "
        "connection, or split it into smaller files.",
    )


class TooManyRunning(Exception):
    """The app has as many imports running as it may; this one was not started."""

    def __init__(self, app_id: str, limit: int) -> None:
        super().__init__(
            f"app '{app_id}' has {limit} import{'s' if limit != 1 else ''} running, the most it "
            "may run at once"
        )
        self.limit = limit
