import { useState } from "preact/hooks";
import { api } from "../../api";
import { ErrorBox } from "../../components/ErrorBox";
import { Loading } from "../../components/Loading";
import { Table } from "../../components/Table";
import { Time } from "../../components/Time";
import { usePageTitle } from "../../components/usePageTitle";
import { me } from "../../session";
import type { Member } from "../../types";
import { useResource } from "../../useResource";

const ROLES = [
  { value: "admin", label: "Admin: everything, members and the audit trail included" },
  { value: "agent", label: "Agent: users, messages, revealing a phone with a reason" },
  { value: "analyst", label: "Analyst: search, statistics and templates; no messages or phones" },
];

function RoleSelect({ member, onChanged }: { member: Member; onChanged: (error: unknown) => void }) {
  return (
    <select
      aria-label={`Role of ${member.email}`}
      value={member.role}
      onChange={(event) => {
        api.setRole(member.email, event.currentTarget.value).then(() => onChanged(null), onChanged);
      }}
    >
      {ROLES.map((role) => (
        <option key={role.value} value={role.value}>
          {role.value}
        </option>
      ))}
    </select>
  );
}

export function MembersPage() {
  usePageTitle("Members");
  const members = useResource((signal) => api.members(signal), []);
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("agent");
  const [added, setAdded] = useState<{ email: string; password: string } | null>(null);
  const [error, setError] = useState<unknown>(null);
  const self = me()?.email;

  const changed = (failure: unknown) => {
    setError(failure);
    members.reload();
  };
  const add = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const made = await api.addMember(email.trim(), role);
      if (made) setAdded({ email: made.email, password: made.password });
      setEmail("");
      members.reload();
    } catch (failure) {
      setError(failure);
    }
  };
  return (
    <section>
      <h1>Members</h1>
      <form class="filters" onSubmit={add}>
        <label for="member-email">Email</label>
        <input id="member-email" type="email" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        <label for="member-role">Role</label>
        <select id="member-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
          {ROLES.map((option) => (
            <option key={option.value} value={option.value}>
              {option.label}
            </option>
          ))}
        </select>
        <button type="submit" class="button primary">
          Add member
        </button>
      </form>
      {added && (
        <p role="status" class="notice">
          {added.email} can sign in with the password <code>{added.password}</code>. It is shown only this once: give
          it to them in person or over a channel you trust.
        </p>
      )}
      {error !== null && <ErrorBox error={error} />}
      {members.error !== null && <ErrorBox error={members.error} onRetry={members.reload} />}
      {members.loading && <Loading />}
      {members.data && (
        <Table
          caption="Members of this app"
          rows={members.data}
          rowKey={(member) => member.email}
          columns={[
            { header: "Email", cell: (member) => member.email },
            { header: "Role", cell: (member) => <RoleSelect member={member} onChanged={changed} /> },
            { header: "Member since", cell: (member) => <Time value={member.created_at} /> },
            {
              header: "Remove",
              cell: (member) =>
                member.email === self ? (
                  <span class="muted">You</span>
                ) : (
                  <button
                    type="button"
                    class="button secondary"
                    onClick={() => api.removeMember(member.email).then(() => changed(null), changed)}
                  >
                    Remove {member.email}
                  </button>
                ),
            },
          ]}
        />
      )}
    </section>
  );
}
