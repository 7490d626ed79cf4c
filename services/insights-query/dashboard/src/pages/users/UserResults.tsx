import type { RefObject } from "preact";
import { formatCount } from "../../components/format";
import { Loading } from "../../components/Loading";
import { MaskedPhone } from "../../components/Phone";
import { type Column, Table } from "../../components/Table";
import { Time } from "../../components/Time";
import { Link, segment } from "../../router";
import type { UserSummary } from "../../types";

interface Props {
  items: UserSummary[];
  inputRef: RefObject<HTMLInputElement | null>;
  nextCursor: string | null;
  loadingMore: boolean;
  onMore: (cursor: string) => void;
}

/** Up and down arrows move between the result links; up from the first goes back to the box. */
function moveFocus(event: KeyboardEvent, index: number, count: number, input: HTMLInputElement | null): void {
  let target: HTMLElement | null = null;
  if (event.key === "ArrowDown" && index + 1 < count) {
    target = document.querySelector(`[data-result-index='${index + 1}']`);
  } else if (event.key === "ArrowUp") {
    target = index === 0 ? input : document.querySelector(`[data-result-index='${index - 1}']`);
  } else {
    return;
  }
  event.preventDefault();
  target?.focus();
}

export function UserResults({ items, inputRef, nextCursor, loadingMore, onMore }: Props) {
  const columns: Column<UserSummary & { index: number }>[] = [
    {
      header: "User ID",
      cell: (user) => (
        <Link
          href={`/users/${segment(user.user_id)}`}
          data-result-index={user.index}
          onKeyDown={(event) => moveFocus(event, user.index, items.length, inputRef.current)}
        >
          {user.user_id}
        </Link>
      ),
      className: "nowrap",
    },
    { header: "Nickname", cell: (user) => user.nickname ?? "", className: "wrap" },
    { header: "Phone", cell: (user) => <MaskedPhone value={user.phone_number} /> },
    { header: "Sent", cell: (user) => formatCount(user.stats.sent), kind: "num" },
    { header: "Read", cell: (user) => formatCount(user.stats.read), kind: "num" },
    { header: "Clicked", cell: (user) => formatCount(user.stats.clicked), kind: "num" },
    {
      header: "Last message",
      cell: (user) => (user.stats.last_sent_at ? <Time value={user.stats.last_sent_at} /> : <span class="muted">Never</span>),
      className: "nowrap",
    },
  ];
  const rows = items.map((user, index) => ({ ...user, index }));
  return (
    <>
      <Table caption="Matching users" hideCaption columns={columns} rows={rows} rowKey={(user) => user.user_id} />
      <div class="more">
        {loadingMore ? (
          <Loading />
        ) : (
          nextCursor && (
            <button type="button" class="button secondary" onClick={() => onMore(nextCursor)}>
              Show more users
            </button>
          )
        )}
      </div>
    </>
  );
}
