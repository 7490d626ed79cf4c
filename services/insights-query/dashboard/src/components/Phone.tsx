import { NONE } from "./format";

/** A phone number as the API gives it: masked (e.g. "+1 415-***-**71") to protect the user. */
export function MaskedPhone({ value }: { value: string | null | undefined }) {
  if (!value) return <span class="muted">{NONE}</span>;
  return (
    <span class="phone" title="Partly hidden to protect the user's privacy">
      {value}
    </span>
  );
}
