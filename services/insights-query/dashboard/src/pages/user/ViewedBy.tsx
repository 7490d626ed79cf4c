import { api } from "../../api";
import { ErrorBox } from "../../components/ErrorBox";
import { Link } from "../../router";
import { useResource } from "../../useResource";
import { AuditTable } from "../audit/AuditTable";

/** For admins: who looked at this user's history, newest first (the audit trail's latest). */
export function ViewedBy({ userId }: { userId: string }) {
  const trail = useResource((signal) => api.audit({ user_id: userId, limit: 10 }, signal), [userId]);
  return (
    <section aria-labelledby="viewed-by-heading">
      <h2 id="viewed-by-heading">Viewed by</h2>
      {trail.error !== null && <ErrorBox error={trail.error} onRetry={trail.reload} />}
      {trail.data && (
        <>
          <AuditTable caption="Latest views of this user" entries={trail.data.items} showUser={false} />
          <p class="hint">
            The latest 10; <Link href="/audit">the audit page</Link> has them all.
          </p>
        </>
      )}
    </section>
  );
}
