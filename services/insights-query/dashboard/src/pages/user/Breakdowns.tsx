import { Empty } from "../../components/Empty";
import { COUNT_NAMES, channelLabel, formatCount } from "../../components/format";
import { type Column, Table } from "../../components/Table";
import { Link, segment } from "../../router";
import type { Counts, UserStats } from "../../types";

function countColumns<T extends Counts>(): Column<T>[] {
  return COUNT_NAMES.map(([field, header]) => ({ header, kind: "num", cell: (row: T) => formatCount(row[field]) }));
}

type ChannelRow = UserStats["by_channel"][number];
type TemplateRow = UserStats["by_template"][number];

const CHANNEL_COLUMNS: Column<ChannelRow>[] = [
  { header: "Channel", cell: (row) => channelLabel(row.channel), className: "nowrap" },
  ...countColumns<ChannelRow>(),
];

const TEMPLATE_COLUMNS: Column<TemplateRow>[] = [
  {
    header: "Template",
    cell: (row) => (
      <>
        <Link href={`/templates/${segment(row.key)}`}>{row.name || row.key}</Link>
        {row.name && (
          <>
            {" "}
            <code>{row.key}</code>
          </>
        )}
      </>
    ),
    className: "wrap",
  },
  ...countColumns<TemplateRow>(),
];

/** The window's counts split by channel and by template. */
export function Breakdowns({ stats }: { stats: UserStats }) {
  if (stats.sent === 0) {
    return (
      <div class="breakdowns">
        <Empty>
          <p>No messages were sent to this user in this window.</p>
        </Empty>
      </div>
    );
  }
  return (
    <div class="breakdowns">
      <Table caption="By channel" columns={CHANNEL_COLUMNS} rows={stats.by_channel} rowKey={(row) => row.channel} />
      <Table caption="By template" columns={TEMPLATE_COLUMNS} rows={stats.by_template} rowKey={(row) => row.key} />
    </div>
  );
}
