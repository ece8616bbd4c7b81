"""Reading source tables in bounded batches, one reader per source kind, with read-ahead."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pyarrow as pa

from fabric_core.circuits import CircuitBreaker, source_batches
from fabric_core.connectors import get_connector
from fabric_core.datasets.plan import SourceTable
from fabric_core.datasets.types import needs_exact_text

_DONE = object()


def read_source(
    source: SourceTable,
    *,
    limit: int | None,
    batch_rows: int,
    timeout: float,
    circuits: CircuitBreaker | None = None,
) -> Iterator[pa.RecordBatch]:
    """The plan's columns of one source table as Arrow batches of at most ``batch_rows``,
    through its connection's circuit breaker when ``circuits`` is given."""
    connector = get_connector(source.spec.kind)

    def open_batches() -> Iterator[pa.RecordBatch]:
        return connector.read_batches(
            source.spec,
            source.schema,
            source.name,
            [column.source_name for column in source.columns],
            text_columns=[
                c.source_name
                for c in source.columns
                if needs_exact_text(c.logical_type, c.native_type)
            ],
            limit=limit,
            batch_rows=batch_rows,
            timeout=timeout,
        )

    return source_batches(circuits, source.connection_id, open_batches, source.spec.secrets)


def read_ahead(batches: Iterator[pa.RecordBatch], depth: int = 2) -> Iterator[pa.RecordBatch]:
    """Read the next batches on a thread while the caller transforms and writes this one.

    At most ``depth`` batches wait in memory; closing the iterator stops the reader.
    """
    waiting: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                while not stop.is_set():
                    try:
                        waiting.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            waiting.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            waiting.put(exc)
        finally:
            close = getattr(batches, "close", None)
            if close:
                close()

    thread = threading.Thread(target=produce, name="dataset-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = waiting.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                waiting.get_nowait()
            except queue.Empty:
                thread.join(0.05)
