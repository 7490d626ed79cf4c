import { navigate } from "./router";
import { csrfToken, type Me, setMe } from "./session";
import type {
  AuditEntry,
  ImportJob,
  ImportMode,
  MessageDetail,
  Member,
  Retention,
  MessageItem,
  OnError,
  Page,
  RejectedRow,
  SourceAdded,
  SourceSetting,
  TemplateDetail,
  TemplateSummary,
  UserDetail,
  UserSummary,
} from "./types";

export const API_BASE = "/api/v1";

export type Query = Record<string, string | number | boolean | null | undefined>;

export interface ProblemError {
  loc?: string[];
  message?: string;
  type?: string;
  allowed?: string[];
  [field: string]: unknown;
}

/** An RFC 9457 problem (or a network failure, status 0) as the dashboard shows it. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string | null;
  readonly errors: ProblemError[];
  readonly body: Record<string, unknown>;

  constructor(status: number, title: string, detail: string | null, body: Record<string, unknown> = {}) {
    super(detail ? `${title}: ${detail}` : title);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.body = body;
    this.errors = Array.isArray(body["errors"]) ? (body["errors"] as ProblemError[]) : [];
  }

  static async fromResponse(response: Response): Promise<ApiError> {
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(await response.text());
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
    } catch {
      // Not JSON (a proxy's error page, say): the status line is all there is.
    }
    return ApiError.fromBody(response.status, response.statusText, body);
  }

  static fromBody(status: number, statusText: string, body: Record<string, unknown>): ApiError {
    const title = typeof body["title"] === "string" ? body["title"] : statusText || `HTTP ${status}`;
    const detail = typeof body["detail"] === "string" ? body["detail"] : null;
    return new ApiError(status, title, detail, body);
  }
}

export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === "AbortError";
}

export function apiUrl(path: string, query: Query = {}): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.set(name, String(value));
  }
  const search = params.toString();
  return `${API_BASE}${path}${search ? `?${search}` : ""}`;
}

/** The session ended (signed out elsewhere, timed out, or the member was removed): sign in again. */
function sessionRefused(): void {
  setMe(null);
  const here = window.location.pathname + window.location.search;
  navigate(here.startsWith("/signin") ? here : `/signin?next=${encodeURIComponent(here)}`, { replace: true });
}

interface RequestOptions {
  query?: Query;
  signal?: AbortSignal;
  accept?: string;
  method?: string;
  /** Sent as JSON. */
  body?: unknown;
  /** Do not leave the page on 401 (the sign-in and the first look at the session). */
  quiet401?: boolean;
}

export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const method = options.method ?? "GET";
  const headers: Record<string, string> = { Accept: options.accept ?? "application/json" };
  const csrf = csrfToken();
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(apiUrl(path, options.query), {
      method,
      headers,
      credentials: "same-origin",
      body: options.body === undefined ? null : JSON.stringify(options.body),
      signal: options.signal ?? null,
    });
  } catch (error) {
    if (isAbort(error)) throw error;
    throw new ApiError(0, "The server could not be reached", "Check the connection and try again.");
  }
  if (response.ok) return response;
  const problem = await ApiError.fromResponse(response);
  if (response.status === 401 && !options.quiet401) sessionRefused();
  throw problem;
}

export async function getJson<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
  const response = await request(path, { query, signal });
  return (await response.json()) as T;
}

/** The member the session cookie signs in, or null when there is none. */
export async function loadMe(): Promise<Me | null> {
  try {
    const response = await request("/me", { quiet401: true });
    const found = (await response.json()) as Me;
    setMe(found);
    return found;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      setMe(null);
      return null;
    }
    throw error;
  }
}

/** How people may sign in here: always a password, and single sign-on when configured. */
export interface SessionOptions {
  password: boolean;
  sso: { label: string; start: string } | null;
}

export async function sessionOptions(): Promise<SessionOptions> {
  return getJson<SessionOptions>("/session/options");
}

/** Signs in with a password; throws the API's refusal. */
export async function signIn(app: string, email: string, password: string): Promise<Me | null> {
  await request("/session", { method: "POST", body: { app, email, password }, quiet401: true });
  return loadMe();
}

/** Ends the session on the server, then shows the sign-in page. */
export async function signOut(): Promise<void> {
  try {
    await request("/session", { method: "DELETE", quiet401: true });
  } finally {
    navigate("/signin");
    setMe(null);
  }
}

async function send<T>(path: string, method: string, body?: unknown): Promise<T | null> {
  const response = await request(path, { method, body });
  return response.status === 204 ? null : ((await response.json()) as T);
}

function filenameOf(response: Response, fallback: string): string {
  const disposition = response.headers.get("Content-Disposition") ?? "";
  const match = /filename\*?=(?:UTF-8'')?"?([^";]+)"?/i.exec(disposition);
  return match?.[1] ? decodeURIComponent(match[1]) : fallback;
}

/** Saves an API file, fetched as a blob so a refusal shows as an error on the page. */
export async function download(path: string, query: Query, fallbackName: string, accept = "text/csv"): Promise<void> {
  const response = await request(path, { query, accept });
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = filenameOf(response, fallbackName);
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface UploadOptions {
  query?: Query;
  signal?: AbortSignal;
  /** Called with the fraction of the file sent, from 0 to 1. */
  onProgress?: (fraction: number) => void;
}

/** Posts a file as multipart field `file`, reporting upload progress (fetch cannot). */
export function upload<T>(path: string, file: File, options: UploadOptions = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", apiUrl(path, options.query));
    const csrf = csrfToken();
    if (csrf) xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && options.onProgress) options.onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(xhr.responseText) as Record<string, unknown>;
      } catch {
        // Leave the body empty; the status decides below.
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body as T);
        return;
      }
      if (xhr.status === 401) sessionRefused();
      reject(ApiError.fromBody(xhr.status, xhr.statusText, body));
    };
    xhr.onerror = () =>
      reject(new ApiError(0, "The upload did not reach the server", "Check the connection and try again."));
    xhr.onabort = () => reject(new DOMException("The upload was cancelled.", "AbortError"));
    options.signal?.addEventListener("abort", () => xhr.abort());
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

const id = encodeURIComponent;

/** The API's resources, one function each. */
export const api = {
  searchUsers: (q: string, query: Query = {}, signal?: AbortSignal) =>
    getJson<Page<UserSummary>>("/users", { ...query, q }, signal),
  user: (userId: string, query: { since?: string; until?: string } = {}, signal?: AbortSignal) =>
    getJson<UserDetail>(`/users/${id(userId)}`, query, signal),
  userMessages: (userId: string, query: Query = {}, signal?: AbortSignal) =>
    getJson<Page<MessageItem>>(`/users/${id(userId)}/messages`, query, signal),
  exportUserMessages: (userId: string, query: Query = {}) =>
    download(`/users/${id(userId)}/messages`, { ...query, format: "csv" }, `${userId}-messages.csv`),
  message: (messageId: string, signal?: AbortSignal) => getJson<MessageDetail>(`/messages/${id(messageId)}`, {}, signal),
  userMessage: (userId: string, messageId: string, signal?: AbortSignal) =>
    getJson<MessageDetail>(`/users/${id(userId)}/messages/${id(messageId)}`, {}, signal),
  eraseUser: (userId: string) =>
    send<{ user_id: string; erased_at: string; complete: boolean }>(`/users/${id(userId)}`, "DELETE"),
  revealPhone: (userId: string, reason: string) =>
    send<{ user_id: string; phone_number: string | null }>(`/users/${id(userId)}/phone`, "POST", { reason }),
  audit: (query: Query = {}, signal?: AbortSignal) => getJson<Page<AuditEntry>>("/audit", query, signal),
  downloadAudit: (query: Query = {}) => download("/audit", { ...query, format: "csv" }, "audit.csv"),
  members: (signal?: AbortSignal) => getJson<Member[]>("/members", {}, signal),
  addMember: (email: string, role: string) => send<Member & { password: string }>("/members", "POST", { email, role }),
  setRole: (email: string, role: string) => send<null>(`/members/${id(email)}`, "PATCH", { role }),
  removeMember: (email: string) => send<null>(`/members/${id(email)}`, "DELETE"),
  sources: (signal?: AbortSignal) => getJson<SourceSetting[]>("/settings/sources", {}, signal),
  setSource: (platform: string, change: { secret?: string; user_field: string | null }) =>
    send<SourceAdded>(`/settings/sources/${id(platform)}`, "PUT", change),
  removeSource: (platform: string) => send<null>(`/settings/sources/${id(platform)}`, "DELETE"),
  retention: (signal?: AbortSignal) => getJson<Retention>("/settings/retention", {}, signal),
  setRetention: (days: number | null) => send<Retention>("/settings/retention", "PUT", { days }),
  templates: (query: Query = {}, signal?: AbortSignal) => getJson<Page<TemplateSummary>>("/templates", query, signal),
  template: (key: string, signal?: AbortSignal) => getJson<TemplateDetail>(`/templates/${id(key)}`, {}, signal),
  imports: (query: Query = {}, signal?: AbortSignal) => getJson<Page<ImportJob>>("/imports", query, signal),
  importJob: (importId: string, signal?: AbortSignal) => getJson<ImportJob>(`/imports/${id(importId)}`, {}, signal),
  importErrors: (importId: string, query: Query = {}, signal?: AbortSignal) =>
    getJson<Page<RejectedRow>>(`/imports/${id(importId)}/errors`, query, signal),
  downloadImportReport: (importId: string) =>
    download(`/imports/${id(importId)}/errors`, { format: "csv" }, `${importId}-errors.csv`),
  startImport: (
    file: File,
    options: { mode: ImportMode; onError: OnError; dryRun: boolean },
    onProgress?: (fraction: number) => void,
    signal?: AbortSignal,
  ) =>
    upload<ImportJob>("/imports", file, {
      query: { mode: options.mode, on_error: options.onError, dry_run: options.dryRun },
      onProgress,
      signal,
    }),
};
