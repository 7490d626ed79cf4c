import { api } from "../../api";
import { ErrorBox } from "../../components/ErrorBox";
import { channelLabel } from "../../components/format";
import { Loading } from "../../components/Loading";
import { StatusBadge } from "../../components/StatusBadge";
import { Time } from "../../components/Time";
import { usePageTitle } from "../../components/usePageTitle";
import { Link, previousAddress, segment } from "../../router";
import type { MessageDetail } from "../../types";
import { useResource } from "../../useResource";
import { ChannelContent } from "./ChannelContent";
import { FailureSection, ResponsesSection, TemplateSection, TimelineSection } from "./Sections";
import "./message.css";

/** The user's page as it was left (its window, filters), when the message was opened from it. */
function backToUser(userId: string): string {
  const page = `/users/${segment(userId)}`;
  const previous = previousAddress();
  return previous && (previous === page || previous.startsWith(`${page}?`)) ? previous : page;
}

function Details({ message }: { message: MessageDetail }) {
  return (
    <>
      <dl class="facts message-facts">
        <dt>Message ID</dt>
        <dd>
          <code>{message.message_id}</code>
        </dd>
        <dt>User</dt>
        <dd>
          <Link href={`/users/${segment(message.user_id)}`}>{message.user_id}</Link>
        </dd>
        <dt>Channel</dt>
        <dd>{channelLabel(message.channel)}</dd>
        <dt>Status</dt>
        <dd>
          <StatusBadge status={message.status} />
        </dd>
        <dt>Sent</dt>
        <dd>
          <Time value={message.sent_at} seconds />
        </dd>
      </dl>
      <div class="message-grid">
        <section aria-labelledby="content-heading" class="message-content">
          <h2 id="content-heading">Content</h2>
          <ChannelContent channel={message.channel} content={message.content} sentAt={message.sent_at} />
        </section>
        <div class="message-side">
          <TemplateSection template={message.template} />
          <TimelineSection timeline={message.timeline} />
          {message.failure && <FailureSection failure={message.failure} />}
          <ResponsesSection responses={message.responses} />
        </div>
      </div>
    </>
  );
}

/** A message of the user the page was opened from (`userId`), or one found by its id alone (a
 * shared link). */
export function MessagePage({ messageId, userId: named }: { messageId: string; userId?: string }) {
  usePageTitle("Message details");
  const message = useResource(
    (signal) => (named ? api.userMessage(named, messageId, signal) : api.message(messageId, signal)),
    [named, messageId],
  );
  const userId = message.data?.user_id;
  return (
    <section class="message-page">
      <p class="breadcrumb">
        {userId ? (
          <Link href={backToUser(userId)}>← Back to {userId}</Link>
        ) : (
          <Link href="/users">← Users</Link>
        )}
      </p>
      <h1>Message details</h1>
      {message.error !== null && <ErrorBox error={message.error} onRetry={message.reload} />}
      {message.loading && !message.data && <Loading />}
      {message.data && <Details message={message.data} />}
    </section>
  );
}
