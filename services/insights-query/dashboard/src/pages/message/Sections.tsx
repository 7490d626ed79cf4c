import { Empty } from "../../components/Empty";
import { NONE, statusLabel } from "../../components/format";
import { Table } from "../../components/Table";
import { Time } from "../../components/Time";
import { Link, segment } from "../../router";
import type { Failure, MessageDetail, ResponseEntry, TimelineEntry } from "../../types";

/** A JSON value from the API as plain text. */
export function valueText(value: unknown): string {
  if (value === null || value === undefined) return NONE;
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

type Variable = [string, unknown];

export function TemplateSection({ template }: { template: MessageDetail["template"] }) {
  const variables: Variable[] = Object.entries(template.variables ?? {});
  return (
    <section aria-labelledby="template-heading">
      <h2 id="template-heading">Template</h2>
      <dl class="facts">
        <dt>Key</dt>
        <dd>
          <Link href={`/templates/${segment(template.key)}`}>{template.key}</Link>
        </dd>
        <dt>Name</dt>
        <dd>{template.name || <span class="muted">{NONE}</span>}</dd>
        <dt>Version</dt>
        <dd>{template.version}</dd>
      </dl>
      {variables.length === 0 ? (
        <p class="muted">This message filled in no variables.</p>
      ) : (
        <Table
          caption="Variables"
          columns={[
            { header: "Variable", cell: ([name]: Variable) => <code>{name}</code>, className: "nowrap" },
            { header: "Value", cell: ([, value]: Variable) => valueText(value), className: "wrap" },
          ]}
          rows={variables}
          rowKey={([name]) => name}
        />
      )}
    </section>
  );
}

// "reported": a status the platform reported in its own words (the detail names it).
const STEP_LABELS: Record<string, string> = { responded: "Responded", reported: "Reported" };

export function TimelineSection({ timeline }: { timeline: TimelineEntry[] }) {
  // The API orders the timeline; sorting again keeps it right for any source (stable on ties).
  const steps = [...timeline].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return (
    <section aria-labelledby="timeline-heading">
      <h2 id="timeline-heading">Timeline</h2>
      {steps.length === 0 ? (
        <Empty>
          <p>No status has been recorded yet.</p>
        </Empty>
      ) : (
        <ol class="timeline">
          {steps.map((step, index) => (
            <li key={`${step.status}-${step.at}-${index}`} class={`timeline-step step-${step.status}`}>
              <span class="timeline-status">{STEP_LABELS[step.status] ?? statusLabel(step.status)}</span>{" "}
              <Time value={step.at} seconds />
              {step.detail && <span class="timeline-detail">{step.detail}</span>}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export function FailureSection({ failure }: { failure: Failure }) {
  return (
    <section aria-labelledby="failure-heading" class="failure">
      <h2 id="failure-heading">Failure</h2>
      <dl class="facts">
        <dt>Code</dt>
        <dd>
          <code>{failure.code}</code>
        </dd>
        {failure.reason && (
          <>
            <dt>Reason</dt>
            <dd>{failure.reason}</dd>
          </>
        )}
        {failure.explanation && (
          <>
            <dt>Meaning</dt>
            <dd>
              {failure.explanation}
              {failure.explained_by && <span class="failure-source">Source: {failure.explained_by}</span>}
            </dd>
          </>
        )}
        {failure.at && (
          <>
            <dt>At</dt>
            <dd>
              <Time value={failure.at} seconds />
            </dd>
          </>
        )}
      </dl>
    </section>
  );
}

const RESPONSE_KINDS: Record<ResponseEntry["type"], string> = {
  button: "Button",
  reply: "Reply",
  form: "Form",
};

function ResponseValue({ response }: { response: ResponseEntry }) {
  const { value } = response;
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    return (
      <dl class="facts response-fields">
        {Object.entries(value as Record<string, unknown>).map(([name, field]) => [
          <dt key={`${name}-name`}>{name}</dt>,
          <dd key={`${name}-value`}>{valueText(field)}</dd>,
        ])}
      </dl>
    );
  }
  if (value === null || value === undefined) return null;
  if (response.type === "button") {
    return (
      <p class="response-value muted">
        Button ID <code>{valueText(value)}</code>
      </p>
    );
  }
  return <p class="response-value">{valueText(value)}</p>;
}

export function ResponsesSection({ responses }: { responses: ResponseEntry[] }) {
  return (
    <section aria-labelledby="responses-heading">
      <h2 id="responses-heading">Responses</h2>
      {responses.length === 0 ? (
        <Empty>
          <p>The user has not responded to this message.</p>
        </Empty>
      ) : (
        <ol class="responses">
          {responses.map((response, index) => (
            <li key={`${response.at}-${index}`} class="response">
              <p class="response-head">
                <span class="badge">{RESPONSE_KINDS[response.type] ?? response.type}</span>{" "}
                {response.label && <strong>{response.label}</strong>} <Time value={response.at} seconds />
              </p>
              <ResponseValue response={response} />
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
