import type { ComponentChildren } from "preact";

// WhatsApp's inline marks: *bold*, _italic_, ~strikethrough~, within one line.
const MARKS = /(\*[^*\n]+\*|_[^_\n]+_|~[^~\n]+~)/g;

/** A chat message's text with its inline marks applied, as text nodes only (never HTML). */
export function ChatText({ text }: { text: string }) {
  const parts: ComponentChildren[] = [];
  let last = 0;
  for (const match of text.matchAll(MARKS)) {
    const start = match.index;
    const token = match[0];
    if (start > last) parts.push(text.slice(last, start));
    const inner = token.slice(1, -1);
    const key = `${start}`;
    if (token.startsWith("*")) parts.push(<strong key={key}>{inner}</strong>);
    else if (token.startsWith("_")) parts.push(<em key={key}>{inner}</em>);
    else parts.push(<s key={key}>{inner}</s>);
    last = start + token.length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return <>{parts}</>;
}
