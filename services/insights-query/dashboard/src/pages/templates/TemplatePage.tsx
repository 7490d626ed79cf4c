import { api } from "../../api";
import { ErrorBox } from "../../components/ErrorBox";
import { channelLabel, formatCount, formatRate } from "../../components/format";
import { Loading } from "../../components/Loading";
import { Table } from "../../components/Table";
import { usePageTitle } from "../../components/usePageTitle";
import { Link } from "../../router";
import type { Channel, Content, TemplateVersion, VariableSpec } from "../../types";
import { useResource } from "../../useResource";
import { Placeholders } from "./Placeholders";
import "./templates.css";

function ChannelTemplate({ channel, content }: { channel: Channel; content: Content }) {
  return (
    <li class="template-channel">
      <h4>{channelLabel(channel)}</h4>
      {content.title && (
        <p class="template-title">
          <Placeholders text={content.title} />
        </p>
      )}
      <p class="template-body">
        <Placeholders text={content.body ?? ""} />
      </p>
      {content.buttons.length > 0 && (
        <ul class="template-buttons" aria-label={`${channelLabel(channel)} buttons`}>
          {content.buttons.map((button) => (
            <li key={button.id}>
              <strong>{button.label || button.id}</strong>
              {button.url && (
                <span class="muted">
                  {" → "}
                  <Placeholders text={button.url} />
                </span>
              )}
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

function VersionCounts({ version }: { version: TemplateVersion }) {
  return (
    <dl class="counts version-counts">
      <div>
        <dt>Sent</dt>
        <dd>{formatCount(version.sent)}</dd>
      </div>
      <div>
        <dt>Read</dt>
        <dd>{formatCount(version.read)}</dd>
      </div>
      <div>
        <dt>Clicked</dt>
        <dd>{formatCount(version.clicked)}</dd>
      </div>
      <div>
        <dt>Read of sent</dt>
        <dd>{formatRate(version.sent > 0 ? version.read / version.sent : null)}</dd>
      </div>
    </dl>
  );
}

function Version({ version, latest, name }: { version: TemplateVersion; latest: boolean; name: string }) {
  const headingId = `version-${version.version}`;
  const channels = Object.entries(version.channels) as [Channel, Content][];
  return (
    <section aria-labelledby={headingId} class="template-version">
      <h2 id={headingId}>
        Version {version.version}
        {latest && <span class="badge version-latest">Latest</span>}
      </h2>
      {version.name && version.name !== name && <p class="muted version-name">Named “{version.name}” in this version</p>}
      <VersionCounts version={version} />
      <h3>Channels</h3>
      {channels.length === 0 ? (
        <p class="muted">This version defines no channel content.</p>
      ) : (
        <ul class="template-channels">
          {channels.map(([channel, content]) => (
            <ChannelTemplate key={channel} channel={channel} content={content} />
          ))}
        </ul>
      )}
      <h3>Variables</h3>
      {version.variable_schema.length === 0 ? (
        <p class="muted">This version has no variables.</p>
      ) : (
        <Table
          caption={`Variables of version ${version.version}`}
          hideCaption
          columns={[
            { header: "Key", cell: (spec: VariableSpec) => <code>{spec.key}</code> },
            { header: "Name", cell: (spec: VariableSpec) => spec.name },
            { header: "Type", cell: (spec: VariableSpec) => spec.type },
          ]}
          rows={version.variable_schema}
          rowKey={(spec) => spec.key}
        />
      )}
    </section>
  );
}

/** One template: every version the catalog has seen, newest first, with its counts. */
export function TemplatePage({ templateKey }: { templateKey: string }) {
  const template = useResource((signal) => api.template(templateKey, signal), [templateKey]);
  const detail = template.data;
  usePageTitle(detail?.name || templateKey);
  const versions = detail ? [...detail.versions].sort((a, b) => b.version - a.version) : [];

  return (
    <section class="template-page">
      <p class="breadcrumb">
        <Link href="/templates">Templates</Link>
      </p>
      <h1>{detail?.name || templateKey}</h1>
      <p class="template-key">
        Key <code>{templateKey}</code>
      </p>
      {template.error !== null && <ErrorBox error={template.error} onRetry={template.reload} />}
      {template.loading && <Loading />}
      {detail &&
        (versions.length === 0 ? (
          <p class="muted">The catalog has no version of this template yet.</p>
        ) : (
          versions.map((version, index) => (
            <Version key={version.version} version={version} latest={index === 0} name={detail.name} />
          ))
        ))}
    </section>
  );
}
