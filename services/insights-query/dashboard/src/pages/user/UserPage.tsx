import { api, ApiError } from "../../api";
import { DailyChart } from "../../components/chart/DailyChart";
import { ErrorBox } from "../../components/ErrorBox";
import { formatDay } from "../../components/format";
import { Loading } from "../../components/Loading";
import { usePageTitle } from "../../components/usePageTitle";
import { Link, navigate, useLocation } from "../../router";
import { may, me } from "../../session";
import type { UserStats } from "../../types";
import { useResource } from "../../useResource";
import { Breakdowns } from "./Breakdowns";
import { Erase } from "./Erase";
import { MessageList } from "./MessageList";
import { Profile } from "./Profile";
import { readUserQuery, type UserQuery, WINDOWS, type WindowChoice, windowSince, writeUserQuery } from "./query";
import { StatCards } from "./StatCards";
import { ViewedBy } from "./ViewedBy";
import "./user.css";

export const CHART_NAME = "Sent, read and clicked per day";

function NotFound({ userId, error }: { userId: string; error: ApiError }) {
  return (
    <div role="alert" class="error-box not-found">
      <p class="error-title">User not found</p>
      <p>{error.detail ?? `No user '${userId}' in this app.`}</p>
      <p>
        Check the ID, or <Link href="/users">search users</Link> by ID, nickname or phone number.
      </p>
    </div>
  );
}

function WindowSelect({ value, onChange }: { value: WindowChoice; onChange: (value: WindowChoice) => void }) {
  return (
    <div class="window-select">
      <label for="window-select">Window</label>
      <select id="window-select" value={value} onChange={(e) => onChange(e.currentTarget.value as WindowChoice)}>
        {WINDOWS.map((option) => (
          <option key={option.value} value={option.value}>
            {option.label}
          </option>
        ))}
      </select>
    </div>
  );
}

/** The chart's days; "All" starts at the first day with activity instead of a year of zeros. */
function chartDays(stats: UserStats, choice: WindowChoice): UserStats["daily"] {
  if (choice !== "all") return stats.daily;
  const first = stats.daily.findIndex((day) => day.sent > 0 || day.read > 0 || day.clicked > 0);
  return first < 0 ? stats.daily.slice(-30) : stats.daily.slice(first);
}

function windowText(stats: UserStats, choice: WindowChoice): string {
  const span = `${formatDay(stats.window.since.slice(0, 10))} – ${formatDay(stats.window.until.slice(0, 10))} (UTC)`;
  return choice === "all"
    ? `Messages sent ${span}: the longest window the statistics cover.`
    : `Messages sent ${span}.`;
}

export function UserPage({ userId }: { userId: string }) {
  usePageTitle(userId);
  const { search } = useLocation();
  const query = readUserQuery(search);
  const since = windowSince(query.window);
  const user = useResource((signal) => api.user(userId, { since }, signal), [userId, since]);
  const change = (changes: Partial<UserQuery>) => writeUserQuery({ ...query, ...changes });

  const notFound = user.error instanceof ApiError && user.error.status === 404 ? user.error : null;
  const stats = user.data?.stats;

  return (
    <section class="user-page">
      <p class="breadcrumb">
        <Link href="/users">Users</Link>
      </p>
      <h1>{userId}</h1>
      {notFound ? (
        <NotFound userId={userId} error={notFound} />
      ) : (
        <>
          {user.error !== null && <ErrorBox error={user.error} onRetry={user.reload} />}
          {user.loading && <Loading />}
          {user.data && <Profile user={user.data} />}
          <section aria-labelledby="stats-heading" aria-busy={user.loading}>
            <div class="section-head">
              <h2 id="stats-heading">Statistics</h2>
              <WindowSelect value={query.window} onChange={(window) => change({ window })} />
            </div>
            {stats && (
              <>
                <p class="hint window-text">{windowText(stats, query.window)}</p>
                <StatCards stats={stats} />
                <h3>Per day</h3>
                <DailyChart label={CHART_NAME} days={chartDays(stats, query.window)} />
                <h3 class="visually-hidden">Breakdowns</h3>
                <Breakdowns stats={stats} />
              </>
            )}
          </section>
          {may("view_messages") ? (
            <MessageList userId={userId} query={query} onChange={change} />
          ) : (
            <section aria-labelledby="messages-heading">
              <h2 id="messages-heading">Messages</h2>
              <p class="hint">Your role ({me()?.role}) does not show message content. An admin can change it.</p>
            </section>
          )}
          {/* Asked once the profile is answered, so this very view (recorded before the answer) is listed. */}
          {may("read_audit") && user.data && <ViewedBy userId={userId} />}
          {may("erase_users") && user.data && (
            <Erase userId={userId} onErased={() => navigate(`/users?erased=${encodeURIComponent(userId)}`)} />
          )}
        </>
      )}
    </section>
  );
}
