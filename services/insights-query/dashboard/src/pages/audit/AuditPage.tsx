import { useState } from "preact/hooks";
import { api } from "../../api";
import { Empty } from "../../components/Empty";
import { ErrorBox } from "../../components/ErrorBox";
import { Loading } from "../../components/Loading";
import { Pager, useCursorPages } from "../../components/Pager";
import { usePageTitle } from "../../components/usePageTitle";
import { useResource } from "../../useResource";
import { AuditTable } from "./AuditTable";

export function AuditPage() {
  usePageTitle("Audit");
  const [userId, setUserId] = useState("");
  const [actor, setActor] = useState("");
  const [filters, setFilters] = useState({ user_id: "", actor: "" });
  const pages = useCursorPages();
  const trail = useResource(
    (signal) => api.audit({ ...filters, cursor: pages.cursor }, signal),
    [filters.user_id, filters.actor, pages.cursor],
  );
  const apply = (event: Event) => {
    event.preventDefault();
    pages.reset();
    setFilters({ user_id: userId.trim(), actor: actor.trim() });
  };
  return (
    <section>
      <h1>Audit</h1>
      <p class="hint">
        Who viewed whose history, revealed a phone number, imported or changed members: newest first. Each entry is
        chained to the one before it; <code>insights audit verify</code> checks that none was changed.
      </p>
      <form class="filters" onSubmit={apply}>
        <label for="audit-user">User ID</label>
        <input id="audit-user" value={userId} onInput={(e) => setUserId(e.currentTarget.value)} />
        <label for="audit-actor">Who</label>
        <input
          id="audit-actor"
          placeholder="member:ann@example.com"
          value={actor}
          onInput={(e) => setActor(e.currentTarget.value)}
        />
        <button type="submit" class="button secondary">
          Filter
        </button>
        <button type="button" class="button secondary" onClick={() => void api.downloadAudit(filters)}>
          Download CSV
        </button>
      </form>
      {trail.error !== null && <ErrorBox error={trail.error} onRetry={trail.reload} />}
      {trail.loading && <Loading />}
      {trail.data &&
        (trail.data.items.length === 0 ? (
          <Empty>Nothing recorded{filters.user_id || filters.actor ? " for these filters" : " yet"}.</Empty>
        ) : (
          <>
            <AuditTable caption="Audit trail" entries={trail.data.items} />
            <Pager pages={pages} nextCursor={trail.data.next_cursor} />
          </>
        ))}
    </section>
  );
}
