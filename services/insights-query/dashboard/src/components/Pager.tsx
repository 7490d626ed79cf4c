import { useCallback, useState } from "preact/hooks";

/** Cursor pages: remembers the cursors already seen so "Previous page" can go back. */
export function useCursorPages() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const next = useCallback((nextCursor: string) => setCursors((stack) => [...stack, nextCursor]), []);
  const previous = useCallback(() => setCursors((stack) => (stack.length > 1 ? stack.slice(0, -1) : stack)), []);
  const reset = useCallback(() => setCursors([null]), []);
  return { cursor, page: cursors.length, hasPrevious: cursors.length > 1, next, previous, reset };
}

export type CursorPages = ReturnType<typeof useCursorPages>;

/** Previous and Next over `pages`; Next follows the list's `nextCursor` (none on the last page). */
export function Pager({ pages, nextCursor }: { pages: CursorPages; nextCursor: string | null }) {
  const { page, hasPrevious, previous: onPrevious, next: onNext } = pages;
  if (!hasPrevious && !nextCursor) return null;
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" class="button secondary" disabled={!hasPrevious} onClick={onPrevious}>
        Previous page
      </button>
      <span class="pager-page">Page {page}</span>
      <button
        type="button"
        class="button secondary"
        disabled={!nextCursor}
        onClick={() => nextCursor && onNext(nextCursor)}
      >
        Next page
      </button>
    </nav>
  );
}
