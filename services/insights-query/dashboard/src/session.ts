// The signed-in member as GET /api/v1/me answers it. The session itself is an HttpOnly cookie
// the page cannot read; the CSRF token is kept in memory only and fetched again on each load.

export interface Me {
  app: string;
  email: string | null;
  role: string | null;
  csrf_token: string | null;
  permissions: string[];
}

export type Permission =
  | "search_users"
  | "view_profile"
  | "see_phones"
  | "view_messages"
  | "reveal_phone"
  | "view_templates"
  | "import"
  | "manage_members"
  | "read_audit"
  | "manage_sources"
  | "manage_settings"
  | "erase_users";

let current: Me | null = null;
const listeners = new Set<() => void>();

export function me(): Me | null {
  return current;
}

export function setMe(value: Me | null): void {
  current = value;
  for (const listener of listeners) listener();
}

export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function isSignedIn(): boolean {
  return current !== null;
}

export function may(permission: Permission): boolean {
  return current?.permissions.includes(permission) ?? false;
}

export function csrfToken(): string | null {
  return current?.csrf_token ?? null;
}
