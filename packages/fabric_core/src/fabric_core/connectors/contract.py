"""The contract every source kind implements: one class in one module, registered in
``fabric_core.connectors``. Nothing outside a kind's module knows how that kind works."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ValidationError

from fabric_core.catalog.harvest import HarvestedCatalog, KnownTable, LogicalType
from fabric_core.errors import InvalidInputError
from fabric_core.schemas import ConnectionCheck

if TYPE_CHECKING:  # for annotations only: pyarrow loads where data is read, not to sync
    import pyarrow as pa

    from fabric_core.connectors.base import ConnectionSpec
    from fabric_core.source_policy import SourcePolicy

# Where a connection's source is, across kinds; each kind takes some of them.
LOCATION_FIELDS = (
    "host",
    "port",
    "database",
    "username",
    "bucket",
    "prefix",
    "endpoint_url",
    "region",
    "access_key_id",
)
# The secret each kind may carry (stored encrypted in one place, never returned).
SECRET_FIELDS = ("password", "secret_access_key")


class Connector(ABC):
    """A source kind: its settings, and how to check, harvest and read it.

    Every method that reaches the source takes a ``timeout`` (seconds) bounding each call
    and raises :class:`fabric_core.errors.SourceError` subclasses with secrets redacted.
    """

    kind: ClassVar[str]
    default_port: ClassVar[int | None] = None
    # The location fields (of LOCATION_FIELDS) and the secret field this kind takes.
    fields: ClassVar[frozenset[str]]
    secret_field: ClassVar[str]
    # Fields that say where the secret is sent: changing one needs the secret again.
    destination_fields: ClassVar[tuple[str, ...]] = ()
    # Options that decide how the secret travels (TLS): changing one needs the secret again.
    transport_options: ClassVar[tuple[str, ...]] = ()
    # The kind's ``options`` (a pydantic model that forbids unknown keys).
    options_model: ClassVar[type[BaseModel]]
    # Whether ``harvest`` reuses the stored columns of a known table (``KnownTable.columns``);
    # False: it only compares fingerprints, and marks an unchanged table ``unchanged_columns``.
    reuses_known_columns: ClassVar[bool] = True

    def validate_settings(
        self, values: dict[str, Any], options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The location fields and options of a connection of this kind, checked and with
        defaults filled in; raises InvalidInputError naming what is wrong."""
        foreign = sorted(
            name for name, value in values.items() if value is not None and name not in self.fields
        )
        if foreign:
            raise InvalidInputError(
                f"{', '.join(foreign)} {'does' if len(foreign) == 1 else 'do'} not apply to a "
                f"{self.kind} connection (it takes {', '.join(sorted(self.fields))})."
            )
        try:
            parsed = self.options_model.model_validate(dict(options or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'options'}: {error['msg']}"
                for error in exc.errors()
            )
            raise InvalidInputError(
                f"Invalid options for a {self.kind} connection: {problems}"
            ) from None
        return self.complete_settings(dict(values)), parsed.model_dump(exclude_none=True)

    @abstractmethod
    def complete_settings(self, values: dict[str, Any]) -> dict[str, Any]:
        """Required fields checked, defaults (such as the port) filled in."""

    @abstractmethod
    def check_place(self, values: dict[str, Any], policy: SourcePolicy) -> None:
        """Refuse (SourcePolicyError), when a connection is saved, a place the source policy
        forbids, as far as it can be told without reaching the source."""

    @abstractmethod
    def confine(self, spec: ConnectionSpec) -> ConnectionSpec:
        """The spec to connect with, checked against ``spec.policy`` now (every connect):
        a resolved file, or the checked address the driver must connect to."""

    @abstractmethod
    def address(self, spec: ConnectionSpec) -> str:
        """Where the source is, for messages (never with credentials)."""

    @abstractmethod
    def check(self, spec: ConnectionSpec, timeout: float) -> ConnectionCheck:
        """Reach the source once: reachable, authenticated, how long it took."""

    @abstractmethod
    def harvest(
        self,
        spec: ConnectionSpec,
        timeout: float,
        *,
        known: Mapping[tuple[str, str], KnownTable] | None = None,
    ) -> HarvestedCatalog:
        """The source's catalog. ``known`` holds what the last sync stored for tables with a
        fingerprint, so a kind that can tell a table is unchanged need not read it again."""

    @abstractmethod
    def read_batches(
        self,
        spec: ConnectionSpec,
        schema: str,
        table: str,
        columns: list[str],
        *,
        text_columns: list[str] = (),
        limit: int | None,
        batch_rows: int,
        timeout: float,
    ) -> Iterator[pa.RecordBatch]:
        """The table's ``columns`` as Arrow batches of at most ``batch_rows`` rows; with
        ``limit`` (previews) at most that many rows, the limit pushed to the source."""

    @abstractmethod
    def distinct_values(
        self,
        spec: ConnectionSpec,
        schema: str,
        table: str,
        column: str,
        *,
        limit: int,
        timeout: float,
    ) -> list[Any]:
        """Up to ``limit`` distinct non-null values of one column, sorted (which ones, when
        there are more, is up to the source)."""

    @abstractmethod
    def logical_type(self, native_type: str) -> LogicalType:
        """The logical type of a column whose native type the catalog records as given."""


def sorted_values(values: Iterable[Any]) -> list[Any]:
    """Distinct values in a stable order: by type, then value (by text where values do not
    compare, such as a decimal NaN)."""
    values = list(values)
    try:
        return sorted(values, key=lambda v: (type(v).__name__, v))
    except (TypeError, ArithmeticError):
        return sorted(values, key=lambda v: (type(v).__name__, str(v)))
