export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <p role="status" class="loading">
      <span class="spinner" aria-hidden="true" />
      {label}
    </p>
  );
}
