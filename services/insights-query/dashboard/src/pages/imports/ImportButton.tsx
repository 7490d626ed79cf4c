import { useState } from "preact/hooks";
import type { ImportJob } from "../../types";
import { ImportDialog } from "./ImportDialog";

/** The "Import users" button and its dialog; `onImported` runs when a started import closes. */
export function ImportButton({ onImported }: { onImported?: (job: ImportJob) => void }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" class="button primary" onClick={() => setOpen(true)}>
        Import users
      </button>
      {open && (
        <ImportDialog
          onClose={(job) => {
            setOpen(false);
            if (job && onImported) onImported(job);
          }}
        />
      )}
    </>
  );
}
