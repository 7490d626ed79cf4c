import type { ImportMode, OnError } from "../../types";

interface Props {
  disabled: boolean;
  mode: ImportMode;
  onError: OnError;
  dryRun: boolean;
  onMode: (mode: ImportMode) => void;
  onOnError: (onError: OnError) => void;
  onDryRun: (dryRun: boolean) => void;
}

/** The import's options, with the API's defaults (upsert, skip the rejected rows). */
export function ImportOptions({ disabled, mode, onError, dryRun, onMode, onOnError, onDryRun }: Props) {
  return (
    <fieldset class="import-options">
      <legend>Options</legend>
      <div class="field-row">
        <div class="field">
          <label for="import-mode">Mode</label>
          <select
            id="import-mode"
            value={mode}
            disabled={disabled}
            onChange={(event) => onMode(event.currentTarget.value as ImportMode)}
          >
            <option value="upsert">Create and update (upsert)</option>
            <option value="insert_only">Create only</option>
            <option value="update_only">Update only</option>
          </select>
        </div>
        <div class="field">
          <label for="import-on-error">Invalid rows</label>
          <select
            id="import-on-error"
            value={onError}
            disabled={disabled}
            onChange={(event) => onOnError(event.currentTarget.value as OnError)}
          >
            <option value="skip_rows">Skip invalid rows</option>
            <option value="reject_file">Reject the whole file</option>
          </select>
        </div>
      </div>
      <label class="checkbox">
        <input
          type="checkbox"
          checked={dryRun}
          disabled={disabled}
          onChange={(event) => onDryRun(event.currentTarget.checked)}
        />
        Dry run: check the file without saving anything
      </label>
    </fieldset>
  );
}
