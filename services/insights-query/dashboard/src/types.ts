// The shapes of the public API (/api/v1) that the dashboard reads; see the contract.

export type Channel = "in_app" | "push" | "sms" | "alimtalk" | "whatsapp" | "email";
export type MessageStatus = "sent" | "delivered" | "read" | "clicked" | "failed";
export type ImportStatus = "queued" | "validating" | "importing" | "completed" | "rejected" | "failed";
export type ImportMode = "upsert" | "insert_only" | "update_only";
export type OnError = "skip_rows" | "reject_file";

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export interface UserSummary {
  user_id: string;
  nickname: string | null;
  phone_number: string | null;
  stats: { sent: number; read: number; clicked: number; last_sent_at: string | null };
}

export interface Counts {
  sent: number;
  delivered: number;
  read: number;
  clicked: number;
  failed: number;
  responded: number;
}

export interface UserStats extends Counts {
  delivery_rate: number | null;
  read_rate: number | null;
  click_rate: number | null;
  response_rate: number | null;
  last_sent_at: string | null;
  last_engaged_at: string | null;
  by_channel: (Counts & { channel: Channel })[];
  by_template: (Counts & { key: string; name: string })[];
  daily: { date: string; sent: number; read: number; clicked: number }[];
  window: { since: string; until: string };
}

export interface UserDetail {
  user_id: string;
  nickname: string | null;
  phone_number: string | null;
  phone_country: string | null;
  created_at: string | null;
  updated_at: string | null;
  imports: string[];
  stats: UserStats;
}

export interface Button {
  id: string;
  label: string;
  url: string | null;
}

export interface Content {
  title: string | null;
  body: string | null;
  buttons: Button[];
}

export interface TemplateRef {
  key: string;
  name: string;
  version: number;
}

export interface Failure {
  code: string;
  /** The sender's own words. */
  reason: string;
  /** What the code means, from a dictionary of the sender's codes. */
  explanation?: string | null;
  /** Where the explanation comes from. */
  explained_by?: string | null;
  at?: string | null;
}

export interface MessageItem {
  message_id: string;
  channel: Channel;
  template: TemplateRef;
  title: string | null;
  body_preview: string | null;
  status: MessageStatus;
  sent_at: string;
  failure: Failure | null;
}

export interface TimelineEntry {
  status: string;
  at: string;
  detail: string | null;
}

export interface ResponseEntry {
  type: "button" | "reply" | "form";
  value: unknown;
  label: string | null;
  at: string;
}

export interface MessageDetail {
  message_id: string;
  user_id: string;
  channel: Channel;
  template: TemplateRef & { variables: Record<string, unknown> };
  content: Content;
  status: MessageStatus;
  sent_at: string;
  timeline: TimelineEntry[];
  failure: Failure | null;
  responses: ResponseEntry[];
}

export interface TemplateSummary {
  key: string;
  name: string;
  latest_version: number;
  sent: number;
  read: number;
  clicked: number;
}

export interface VariableSpec {
  key: string;
  type: string;
  name: string;
}

export interface TemplateVersion {
  version: number;
  name?: string;
  channels: Partial<Record<Channel, Content>>;
  variable_schema: VariableSpec[];
  sent: number;
  read: number;
  clicked: number;
}

export interface TemplateDetail {
  key: string;
  name: string;
  versions: TemplateVersion[];
}

export interface ImportNote {
  code: string;
  message: string;
  line?: number | null;
}

export interface ImportJob {
  id: string;
  filename: string;
  status: ImportStatus;
  mode: ImportMode;
  on_error: OnError;
  dry_run: boolean;
  total_rows: number | null;
  created: number;
  updated: number;
  unchanged: number;
  rejected: number;
  progress: number;
  created_at: string;
  /** When its users were published; null before (and for dry runs and rejected files). */
  published_at: string | null;
  /** When every user it published could be found; `completed` comes only then. */
  visible_at: string | null;
  finished_at: string | null;
  errors: ImportNote[];
  warnings: ImportNote[];
}

export interface RejectedRow {
  line: number;
  user_id: string | null;
  column: string | null;
  code: string;
  message: string;
}

export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  user_id: string | null;
  address: string | null;
  reason: string | null;
  detail: string | null;
  hash: string;
}

/** A platform whose own callbacks the app may take (GET /settings/sources); never its secret. */
export interface SourceSetting {
  platform: string;
  title: string;
  credential: string;
  credential_hint: string;
  token_made_here: boolean;
  configured: boolean;
  configured_at: string | null;
  user_field: string | null;
  user_field_kind: "path" | "parameter";
  user_field_example: string;
  user_field_default: string;
  /** Absolute when PUBLIC_BASE_URL is set, else the path alone. */
  callback_url: string;
}

export interface SourceAdded extends SourceSetting {
  /** Braze's bearer token when it was made here: shown only this once. */
  token: string | null;
}

export interface Retention {
  days: number | null;
  updated_at: string | null;
}

export interface Member {
  email: string;
  role: string;
  created_at: string;
}
