import { Table } from "../../components/Table";
import { Time } from "../../components/Time";
import { NONE } from "../../components/format";
import { Link, segment } from "../../router";
import type { AuditEntry } from "../../types";

const ACTIONS: Record<string, string> = {
  "user.view": "Viewed profile",
  "user.messages": "Viewed messages",
  "user.export": "Exported messages",
  "user.reveal_phone": "Revealed phone",
  "message.view": "Viewed message",
  "import.start": "Started import",
  "member.add": "Added member",
  "member.set_role": "Changed role",
  "member.remove": "Removed member",
  "member.reset_password": "Reset password",
  "key.create": "Created API key",
  "key.revoke": "Revoked API key",
  "webhook_secret.create": "Created webhook secret",
  "webhook_secret.rotate": "Rotated webhook secret",
  "webhook_secret.require_timestamp": "Changed webhook signatures",
  "source.add": "Set up source",
  "source.remove": "Removed source",
  "retention.set": "Changed retention",
  "session.password": "Signed in",
  "session.sso": "Signed in with single sign-on",
  "session.end_all": "Signed out everywhere",
  "user.erase": "Erased user",
};

export function actionLabel(action: string): string {
  return ACTIONS[action] ?? action;
}

export function AuditTable({ caption, entries, showUser = true }: { caption: string; entries: AuditEntry[]; showUser?: boolean }) {
  return (
    <Table
      caption={caption}
      rows={entries}
      rowKey={(entry) => String(entry.seq)}
      columns={[
        { header: "When", cell: (entry) => <Time value={entry.at} seconds /> },
        { header: "Who", cell: (entry) => entry.actor },
        { header: "Action", cell: (entry) => actionLabel(entry.action) },
        ...(showUser
          ? [
              {
                header: "User",
                cell: (entry: AuditEntry) =>
                  entry.user_id ? <Link href={`/users/${segment(entry.user_id)}`}>{entry.user_id}</Link> : NONE,
              },
            ]
          : []),
        { header: "Reason or detail", cell: (entry) => entry.reason ?? entry.detail ?? NONE },
        { header: "From", cell: (entry) => entry.address ?? NONE },
      ]}
    />
  );
}
