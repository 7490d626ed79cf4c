"""The erase rule the projection follows; it lives in `insights_common.erasure`, shared with
import-svc's registry and ingest's phone directory, which consume the users topic too."""

from insights_common.erasure import Screened, UserKey, screen, user_of, users_of

__all__ = ["Screened", "UserKey", "screen", "user_of", "users_of"]
