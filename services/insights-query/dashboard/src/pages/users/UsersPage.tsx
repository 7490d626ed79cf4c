import { useEffect, useRef, useState } from "preact/hooks";
import { api, isAbort } from "../../api";
import { Empty } from "../../components/Empty";
import { ErrorBox } from "../../components/ErrorBox";
import { Loading } from "../../components/Loading";
import { usePageTitle } from "../../components/usePageTitle";
import { navigate, segment, setSearch, useLocation } from "../../router";
import type { UserSummary } from "../../types";
import { ImportButton } from "../imports/ImportButton";
import { UserResults } from "./UserResults";

const DEBOUNCE_MS = 200;

interface Results {
  q: string;
  items: UserSummary[];
  nextCursor: string | null;
}

/** `value`, once it has stopped changing for `delay` ms. */
function useDebounced(value: string, delay: number): string {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const timer = setTimeout(() => setSettled(value), delay);
    return () => clearTimeout(timer);
  }, [value, delay]);
  return settled;
}

export function UsersPage() {
  usePageTitle("Users");
  const { search } = useLocation();
  const [text, setText] = useState(() => search.get("q") ?? "");
  // After an admin erased a user, the user page sends them here: say it was done.
  const [erased] = useState(() => search.get("erased"));
  const q = useDebounced(text.trim(), DEBOUNCE_MS);
  const [results, setResults] = useState<Results | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [generation, setGeneration] = useState(0);
  const inputRef = useRef<HTMLInputElement>(null);
  const running = useRef<AbortController | null>(null);

  // One request at a time: a new query cancels the one still on its way.
  const fetchPage = (query: string, cursor: string | null, append: boolean) => {
    running.current?.abort();
    const controller = new AbortController();
    running.current = controller;
    setLoading(true);
    setError(null);
    api.searchUsers(query, { cursor }, controller.signal).then(
      (page) => {
        if (controller.signal.aborted) return;
        setResults((previous) => ({
          q: query,
          items: append && previous ? [...previous.items, ...page.items] : page.items,
          nextCursor: page.next_cursor,
        }));
        setLoading(false);
      },
      (caught: unknown) => {
        if (controller.signal.aborted || isAbort(caught)) return;
        setError(caught);
        setLoading(false);
      },
    );
  };

  useEffect(() => {
    setSearch({ q });
    if (!q) {
      running.current?.abort();
      setResults(null);
      setError(null);
      setLoading(false);
      return;
    }
    setResults(null);
    fetchPage(q, null, false);
  }, [q, generation]);

  useEffect(() => () => running.current?.abort(), []);

  // The query lives in the URL too: following a link to /users (or going back) resets the box.
  const urlQ = search.get("q") ?? "";
  useEffect(() => {
    if (urlQ !== q) setText(urlQ);
  }, [urlQ]);

  useEffect(() => inputRef.current?.focus(), []);

  const current = results && results.q === q ? results : null;
  const openFirst = () => {
    const first = current?.items[0];
    if (first && text.trim() === q) navigate(`/users/${segment(first.user_id)}`);
  };

  const onKeyDown = (event: KeyboardEvent) => {
    if (event.key === "ArrowDown") {
      const first = document.querySelector<HTMLAnchorElement>("[data-result-index='0']");
      if (first) {
        event.preventDefault();
        first.focus();
      }
    } else if (event.key === "Enter") {
      event.preventDefault();
      openFirst();
    } else if (event.key === "Escape" && text) {
      event.preventDefault();
      setText("");
    }
  };

  return (
    <section>
      <div class="page-head">
        <h1>Users</h1>
        <ImportButton onImported={() => setGeneration((n) => n + 1)} />
      </div>
      {erased && (
        <p role="status" class="notice erased-notice">
          User <strong>{erased}</strong> was erased.
        </p>
      )}
      <div class="search">
        <label for="user-search">Search users</label>
        <input
          ref={inputRef}
          id="user-search"
          type="search"
          value={text}
          placeholder="User ID, nickname or phone number"
          autoComplete="off"
          spellcheck={false}
          aria-describedby="user-search-hint"
          aria-controls="user-results"
          onInput={(event) => setText(event.currentTarget.value)}
          onKeyDown={onKeyDown}
        />
        <p id="user-search-hint" class="hint">
          Results appear as you type. Press ↓ to move to the results and Enter to open one.
        </p>
      </div>
      <div id="user-results">
        {!q ? (
          <Empty>
            <p>Search by user ID, nickname or phone number.</p>
            <p>An exact user ID comes first, then user IDs that start with it, then nicknames and phone numbers.</p>
          </Empty>
        ) : error ? (
          <ErrorBox error={error} onRetry={() => setGeneration((n) => n + 1)} />
        ) : !current ? (
          <Loading />
        ) : current.items.length === 0 ? (
          <Empty>
            <p>No users match “{q}”.</p>
            <p>Try the start of a user ID, a word of the nickname, or a phone number with its country code.</p>
          </Empty>
        ) : (
          <UserResults
            items={current.items}
            inputRef={inputRef}
            nextCursor={current.nextCursor}
            loadingMore={loading}
            onMore={(cursor) => fetchPage(q, cursor, true)}
          />
        )}
      </div>
    </section>
  );
}
