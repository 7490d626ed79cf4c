import { MaskedPhone } from "../../components/Phone";
import { NONE } from "../../components/format";
import { Time } from "../../components/Time";
import { Link, segment } from "../../router";
import { may, me } from "../../session";
import type { UserDetail } from "../../types";
import { Reveal } from "./Reveal";

const regions = typeof Intl.DisplayNames === "function" ? new Intl.DisplayNames(undefined, { type: "region" }) : null;

/** "United States (US)" from the ISO code the API derives from the phone number. */
export function countryName(code: string | null): string {
  if (!code) return NONE;
  let name: string | undefined;
  try {
    name = regions?.of(code);
  } catch {
    name = undefined;
  }
  return name && name !== code ? `${name} (${code})` : code;
}

export function Profile({ user }: { user: UserDetail }) {
  return (
    <section aria-labelledby="profile-heading" class="user-profile">
      <h2 id="profile-heading">Profile</h2>
      <dl class="facts">
        <dt>User ID</dt>
        <dd>
          <code>{user.user_id}</code>
        </dd>
        <dt>Nickname</dt>
        <dd>{user.nickname || <span class="muted">{NONE}</span>}</dd>
        <dt>Phone</dt>
        <dd>
          {may("see_phones") ? (
            <>
              <MaskedPhone value={user.phone_number} />{" "}
              {user.phone_number && may("reveal_phone") && <Reveal userId={user.user_id} />}
            </>
          ) : (
            <span class="muted">Not shown to your role ({me()?.role})</span>
          )}
        </dd>
        <dt>Country</dt>
        <dd>{countryName(user.phone_country)}</dd>
        <dt>Last sent</dt>
        <dd>
          <Time value={user.stats.last_sent_at} />
        </dd>
        <dt>Last engaged</dt>
        <dd>
          <Time value={user.stats.last_engaged_at} />
        </dd>
        <dt>Created</dt>
        <dd>
          <Time value={user.created_at} />
        </dd>
        <dt>Imports</dt>
        <dd>
          {user.imports.length === 0 ? (
            <span class="muted">None (known from the messaging platform only)</span>
          ) : (
            <ul class="inline-list">
              {user.imports.map((id) => (
                <li key={id}>
                  <Link href={`/imports/${segment(id)}`}>{id}</Link>
                </li>
              ))}
            </ul>
          )}
        </dd>
      </dl>
    </section>
  );
}
