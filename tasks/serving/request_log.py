"""Append-only request log of the serving API: JSONL files, Parquet parts, a Kafka topic.

Every request to ``/v1/...`` becomes one record (:data:`FIELDS`): UTC time, method and path,
project and key id (never the key), model and version, HTTP status and outcome (``ok``,
``rejected`` for 4xx, ``error`` for 5xx), the error message, latency in milliseconds, and small
input / output summaries (batch size and shape, per-band means; predicted class counts and mean
confidence). Sinks never rewrite what they wrote:

- ``jsonl``: one line per record in ``{folder}/requests-{YYYY-MM-DD}.jsonl`` (UTC day), flushed
  per record;
- ``parquet``: records buffered and written as new files ``{folder}/parquet/part-*.parquet`` every
  ``parquet_flush_records`` records and at shutdown (summaries as JSON strings);
- ``kafka``: each record as JSON to a topic through a producer with confluent-kafka's
  ``produce(topic, value=, key=)`` / ``poll`` / ``flush`` (a real ``confluent_kafka.Producer``
  from the config, or any object with those methods passed in).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from tasks.config.serving import RequestLogConfig

FIELDS = ("time", "method", "path", "project", "key_id", "model", "version", "status",
          "outcome", "error", "latency_ms", "input_summary", "output_summary")


class Sink(Protocol):
    """Where records go."""

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""

    def close(self) -> None:
        """Flush and release resources."""


class JsonlSink:
    """One JSON line per record, one file per UTC day; append mode, flushed per record."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._day: str | None = None
        self._handle: Any = None

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (thread-safe)."""
        line = json.dumps(record, separators=(",", ":"), default=str) + "\n"
        day = str(record["time"])[:10]
        with self._lock:
            if day != self._day:
                if self._handle is not None:
                    self._handle.close()
                self._handle = (self.folder / f"requests-{day}.jsonl").open("a", encoding="utf-8")
                self._day = day
            self._handle.write(line)
            self._handle.flush()

    def close(self) -> None:
        """Close the open file."""
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
                self._day = None


class ParquetSink:
    """Records buffered and written as new Parquet part files (never appended to in place)."""

    def __init__(self, folder: Path, flush_records: int = 1000) -> None:
        self.folder = Path(folder) / "parquet"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.flush_records = flush_records
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._seq = 0

    def write(self, record: dict[str, Any]) -> None:
        """Buffer one record; write a part file when the buffer is full."""
        flat = {k: record.get(k) for k in FIELDS}
        for key in ("input_summary", "output_summary"):
            flat[key] = json.dumps(flat[key], default=str) if flat[key] is not None else None
        with self._lock:
            self._buffer.append(flat)
            if len(self._buffer) >= self.flush_records:
                self._flush_locked()

    def _flush_locked(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self._buffer:
            return
        schema = pa.schema([("time", pa.string()), ("method", pa.string()),
                            ("path", pa.string()), ("project", pa.string()),
                            ("key_id", pa.string()), ("model", pa.string()),
                            ("version", pa.int64()), ("status", pa.int64()),
                            ("outcome", pa.string()), ("error", pa.string()),
                            ("latency_ms", pa.float64()), ("input_summary", pa.string()),
                            ("output_summary", pa.string())])
        table = pa.Table.from_pylist(self._buffer, schema=schema)
        self._seq += 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.folder / f"part-{stamp}-{os.getpid()}-{self._seq:06d}.parquet"
        tmp = final.with_name(f".{final.name}.tmp")
        pq.write_table(table, tmp)
        tmp.rename(final)  # readers never see a half-written part
        self._buffer.clear()

    def flush(self) -> None:
        """Write the buffered records as a part file now."""
        with self._lock:
            self._flush_locked()

    def close(self) -> None:
        """Write what is buffered."""
        self.flush()


class KafkaSink:
    """Each record as a JSON message on a topic (key: the project)."""

    def __init__(self, producer: Any, topic: str) -> None:
        for method in ("produce", "flush"):
            if not callable(getattr(producer, method, None)):
                raise TypeError(f"Kafka producer {producer!r} lacks {method}(); pass a "
                                "confluent_kafka.Producer or an object with produce/poll/flush")
        self.producer = producer
        self.topic = topic

    def write(self, record: dict[str, Any]) -> None:
        """Send one record (asynchronously; delivery callbacks are served by ``poll(0)``)."""
        value = json.dumps(record, separators=(",", ":"), default=str).encode()
        key = (record.get("project") or "").encode()
        self.producer.produce(self.topic, value=value, key=key)
        poll = getattr(self.producer, "poll", None)
        if callable(poll):
            poll(0)

    def close(self) -> None:
        """Wait until the producer delivered what it holds."""
        self.producer.flush()


def kafka_producer(bootstrap_servers: str) -> Any:
    """Return a ``confluent_kafka.Producer``; clear error when the package is missing."""
    try:
        from confluent_kafka import Producer
    except ImportError:
        raise RuntimeError(
            "request_log.sinks lists 'kafka' but confluent-kafka is not installed; "
            "pip install confluent-kafka, or drop 'kafka' from request_log.sinks") from None
    return Producer({"bootstrap.servers": bootstrap_servers})


class RequestLog:
    """Fan a record out to every configured sink; a failing sink never fails a request.

    Args:
        cfg: the ``request_log`` config section.
        folder: the resolved log folder.
        kafka_producer_obj: producer used by the ``kafka`` sink (default: a
            ``confluent_kafka.Producer`` on ``kafka.bootstrap_servers``).

    """

    def __init__(self, cfg: RequestLogConfig, folder: Path,
                 kafka_producer_obj: Any | None = None) -> None:
        self.cfg = cfg
        self.folder = Path(folder)
        self.sinks: dict[str, Sink] = {}
        self.failures = 0
        for name in cfg.sinks:
            if name == "jsonl":
                self.sinks[name] = JsonlSink(self.folder)
            elif name == "parquet":
                self.sinks[name] = ParquetSink(self.folder, cfg.parquet_flush_records)
            else:
                producer = kafka_producer_obj or kafka_producer(cfg.kafka.bootstrap_servers)
                self.sinks[name] = KafkaSink(producer, cfg.kafka.topic)

    def write(self, record: dict[str, Any]) -> None:
        """Append a record to every sink (errors are counted and logged, not raised)."""
        import logging

        for name, sink in self.sinks.items():
            try:
                sink.write(record)
            except Exception:  # logging must not take the service down
                self.failures += 1
                logging.getLogger(__name__).exception("request log sink %s failed", name)

    def close(self) -> None:
        """Flush and close every sink."""
        for sink in self.sinks.values():
            sink.close()


def read_records(folder: str | Path, sink: str = "jsonl") -> Iterator[dict[str, Any]]:
    """Yield the records of a log folder written by the ``jsonl`` or ``parquet`` sink.

    Summaries come back as dicts in both cases; a torn last JSONL line (a crash mid-write) is
    skipped.
    """
    folder = Path(folder)
    if sink == "jsonl":
        for path in sorted(folder.glob("requests-*.jsonl")):
            with path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError:
                        continue
        return
    if sink != "parquet":
        raise ValueError(f"sink {sink!r} cannot be read back; allowed: ['jsonl', 'parquet']")
    import pyarrow.parquet as pq

    for path in sorted((folder / "parquet").glob("part-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            for key in ("input_summary", "output_summary"):
                if row.get(key):
                    row[key] = json.loads(row[key])
            yield row
