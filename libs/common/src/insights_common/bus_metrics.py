"""What the Kafka bus tells Prometheus: consumer lag per topic and partition, batch handling time
and failures per consumer group, records taken, and dead letters per topic.

One collector per bus, registered in the process's registry beside the HTTP metrics
(`install_observability(..., collectors=[bus.metrics])`); deploy/observability's alert rules
and dashboard read these names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# (topic, partition) -> the offset one past the newest record there, or None when not known yet.
EndOffsets = Callable[[], dict[tuple[str, int], int | None]]


@dataclass
class _Group:
    ends: EndOffsets
    consumed: dict[tuple[str, int], int]


class BusMetrics(Collector):
    def __init__(self) -> None:
        self.batch_seconds = Histogram(
            "insights_consumer_batch_duration_seconds",
            "Time to handle one batch of records (decode, write, dead-letter), by consumer group",
            ["group"],
            registry=None,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.batch_failures = Counter(
            "insights_consumer_batch_failures_total",
            "Batches whose handling failed and will be retried, by consumer group and cause "
            "(outage: a dependency is down; error: anything else)",
            ["group", "cause"],
            registry=None,
        )
        self.records = Counter(
            "insights_consumer_records_total",
            "Records handled, by consumer group and topic",
            ["group", "topic"],
            registry=None,
        )
        self.dead_letters = Counter(
            "insights_dead_letters_total",
            "Records sent to a dead-letter topic, by the topic they came from",
            ["topic"],
            registry=None,
        )
        self._groups: dict[str, _Group] = {}

    def follow(self, group: str, ends: EndOffsets) -> None:
        """Report the lag of `group`, whose partitions' end offsets `ends` answers."""
        self._groups[group] = _Group(ends, {})

    def took(
        self,
        group: str,
        records: Mapping[str, int],
        next_offsets: Mapping[tuple[str, int], int],
    ) -> None:
        """`group` handled a batch: `records` by topic, and the offset after its last record on
        each (topic, partition). Counted once a batch: a thousand records cost a few lookups."""
        for topic, count in records.items():
            self.records.labels(group, topic).inc(count)
        self._groups[group].consumed.update(next_offsets)

    def collect(self) -> Iterator[Metric]:
        yield from self.batch_seconds.collect()
        yield from self.batch_failures.collect()
        yield from self.records.collect()
        yield from self.dead_letters.collect()
        lag = GaugeMetricFamily(
            "insights_consumer_lag",
            "Records on a partition not yet handled by the consumer group (the partition's end "
            "offset, committed records only, less the group's next offset)",
            labels=["group", "topic", "partition"],
        )
        for name, group in self._groups.items():
            for (topic, partition), end in group.ends().items():
                if end is None:
                    continue
                done = group.consumed.get((topic, partition))
                if done is None:
                    continue  # nothing taken here since this process started
                lag.add_metric([name, topic, str(partition)], max(0, end - done))
        yield lag
