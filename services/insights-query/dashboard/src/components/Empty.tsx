import type { ComponentChildren } from "preact";

export function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}
