import type { Channel, ImportStatus, MessageStatus } from "../types";

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const dateTimeSeconds = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "medium" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeZone: "UTC" });
const whole = new Intl.NumberFormat();
const percent = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

export const NONE = "—";

function parse(iso: string | null | undefined): Date | null {
  if (!iso) return null;
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? null : moment;
}

/** A moment in the viewer's time zone, e.g. "Nov 27, 2026, 5:11 PM". */
export function formatTime(iso: string | null | undefined, options: { seconds?: boolean } = {}): string {
  const moment = parse(iso);
  if (!moment) return NONE;
  return (options.seconds ? dateTimeSeconds : dateTime).format(moment);
}

/** A UTC calendar day ("2026-11-27") as the viewer writes dates. */
export function formatDay(day: string): string {
  const moment = parse(`${day}T00:00:00Z`);
  return moment ? dateOnly.format(moment) : day;
}

/** "3 min ago", "2 days ago"; for glanceable lists where the exact time is in the tooltip. */
export function formatAgo(iso: string | null | undefined, now: number = Date.now()): string {
  const moment = parse(iso);
  if (!moment) return NONE;
  const seconds = Math.round((now - moment.getTime()) / 1000);
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const steps: [number, Intl.RelativeTimeFormatUnit][] = [
    [60, "second"],
    [60, "minute"],
    [24, "hour"],
    [30, "day"],
    [12, "month"],
    [Number.POSITIVE_INFINITY, "year"],
  ];
  let value = seconds;
  for (const [size, unit] of steps) {
    if (Math.abs(value) < size) return relative.format(-Math.round(value), unit);
    value /= size;
  }
  return formatTime(iso);
}

export function formatCount(value: number | null | undefined): string {
  return value === null || value === undefined ? NONE : whole.format(value);
}

/** A rate from 0 to 1 as a percentage; the API's null (nothing to divide by) as a dash. */
export function formatRate(value: number | null | undefined): string {
  return value === null || value === undefined ? NONE : percent.format(value);
}

const CHANNELS: Record<Channel, string> = {
  in_app: "In-app",
  push: "Push",
  sms: "SMS",
  alimtalk: "AlimTalk",
  whatsapp: "WhatsApp",
  email: "Email",
};

export function channelLabel(channel: string): string {
  return CHANNELS[channel as Channel] ?? channel;
}

const STATUSES: Record<MessageStatus | ImportStatus, string> = {
  sent: "Sent",
  delivered: "Delivered",
  read: "Read",
  clicked: "Clicked",
  failed: "Failed",
  queued: "Queued",
  validating: "Validating",
  importing: "Importing",
  completed: "Completed",
  rejected: "Rejected",
};

export function statusLabel(status: string): string {
  return STATUSES[status as MessageStatus | ImportStatus] ?? status;
}

export function formatBytes(size: number): string {
  if (size < 1024) return `${size} B`;
  if (size < 1024 * 1024) return `${(size / 1024).toFixed(1)} KB`;
  return `${(size / 1024 / 1024).toFixed(1)} MB`;
}

/** The six counts of a message funnel, in the order every page shows them. */
export const COUNT_NAMES = [
  ["sent", "Sent"],
  ["delivered", "Delivered"],
  ["read", "Read"],
  ["clicked", "Clicked"],
  ["failed", "Failed"],
  ["responded", "Responded"],
] as const;
