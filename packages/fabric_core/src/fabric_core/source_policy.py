"""Where sources may be, and how long they may take: the policy every source call passes.

A connection names a place Fabric's services will open with their own network position and
file permissions, so the place is checked, not trusted:

- a ``sqlite`` file must lie under one of ``FABRIC_SQLITE_ROOTS`` once links are followed,
  and never be one of Fabric's own files (metadata DB, keys, tokens, Airflow's home);
- a network host must be a DNS name or an IP address; every address it resolves to is
  checked against ``FABRIC_SOURCE_HOSTS_DENY`` (and ``FABRIC_SOURCE_HOSTS_ALLOW`` when set)
  at every connect, and the driver is then pointed at the checked address, so a name that
  resolves elsewhere a moment later (DNS rebinding) is not followed.

Refusals are :class:`SourcePolicyError` (422) naming the rule that refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fabric_core.errors import InvalidInputError, SourceUnreachableError

if TYPE_CHECKING:
    from fabric_core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Link-local ranges and the instance-metadata endpoints of the big clouds: a source there
# would read the service's own cloud credentials.
DEFAULT_HOSTS_DENY: tuple[str, ...] = (
    "169.254.0.0/16",  # IPv4 link-local: AWS, GCP, Azure, OpenStack metadata, ECS task creds
    "fe80::/10",  # IPv6 link-local
    "fd00:ec2::254/128",  # AWS metadata over IPv6
    "fd20:ce::254/128",  # GCP metadata over IPv6
    "100.100.100.200/32",  # Alibaba Cloud metadata
    "168.63.129.16/32",  # Azure wire server
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
)

# The well-known NAT64 prefix (RFC 6052): its last 32 bits are an IPv4 address.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

_DNS_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"^{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?$")

# getaddrinfo has no timeout of its own; a resolver that never answers must not hold a worker.
_resolver = ThreadPoolExecutor(max_workers=8, thread_name_prefix="fabric-resolve")


class SourcePolicyError(InvalidInputError):
    """A connection names a place the source policy refuses."""


@dataclass(frozen=True)
class HostRules:
    """A list of CIDR networks and host names (``FABRIC_SOURCE_HOSTS_DENY``/``_ALLOW``)."""

    setting: str
    networks: tuple[IPNetwork, ...] = ()
    names: tuple[str, ...] = ()

    @classmethod
    def parse(cls, setting: str, entries: Iterable[str]) -> HostRules:
        networks: list[IPNetwork] = []
        names: list[str] = []
        for entry in entries:
            entry = entry.strip()
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                names.append(_normal_name(entry))
        return cls(setting, tuple(networks), tuple(names))

    def __bool__(self) -> bool:
        return bool(self.networks or self.names)

    def name_rule(self, host: str) -> str | None:
        """The entry matching a host name (``.example.com`` matches its subdomains)."""
        name = _normal_name(host)
        for entry in self.names:
            if name == entry or (entry.startswith(".") and name.endswith(entry)):
                return entry
        return None

    def address_rule(self, address: IPAddress) -> str | None:
        """The network entry holding an address (an IPv6 address that carries an IPv4 one,
        IPv4-mapped or NAT64, counts as that IPv4 address too)."""
        candidates = [address]
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped:
                candidates.append(address.ipv4_mapped)
            if address in _NAT64:
                candidates.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for network in self.networks:
            if any(c.version == network.version and c in network for c in candidates):
                return str(network)
        return None


def _normal_name(name: str) -> str:
    return name.strip().lower().rstrip(".")


@dataclass(frozen=True)
class SourcePolicy:
    """Places and time limits for source calls (see the module docstring)."""

    sqlite_roots: tuple[Path, ...] = ()
    protected_paths: tuple[Path, ...] = ()
    protected_dirs: tuple[Path, ...] = ()
    hosts_deny: HostRules = field(
        default_factory=lambda: HostRules.parse("FABRIC_SOURCE_HOSTS_DENY", DEFAULT_HOSTS_DENY)
    )
    hosts_allow: HostRules = field(
        default_factory=lambda: HostRules.parse("FABRIC_SOURCE_HOSTS_ALLOW", ())
    )
    connect_timeout: float = 5.0
    read_timeout: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SourcePolicy:
        home = settings.home.resolve()
        protected = [home / name for name in ("secret.key", "admin.token", "service.token")]
        for database_url in (settings.resolved_database_url, settings.airflow_database_url):
            if database_url and database_url.startswith("sqlite:///"):
                db = Path(database_url.removeprefix("sqlite:///")).resolve()
                protected += [
                    db,
                    *(db.with_name(db.name + s) for s in ("-wal", "-shm", "-journal")),
                ]
        return cls(
            sqlite_roots=tuple(Path(root).resolve() for root in settings.resolved_sqlite_roots),
            protected_paths=tuple(protected),
            protected_dirs=(home / "airflow", home / "logs"),
            hosts_deny=HostRules.parse("FABRIC_SOURCE_HOSTS_DENY", settings.source_hosts_deny),
            hosts_allow=HostRules.parse("FABRIC_SOURCE_HOSTS_ALLOW", settings.source_hosts_allow),
            connect_timeout=settings.source_connect_timeout,
            read_timeout=settings.source_read_timeout,
        )

    # --- SQLite files -------------------------------------------------------------------

    def sqlite_path(self, database: str) -> Path:
        """The resolved file a ``sqlite`` connection may open; else SourcePolicyError.

        The refusal reads the same whether or not the file exists, so the check cannot be
        used to probe the service's file system.
        """
        if any(ch in database for ch in "?#\x00") or database.lower().startswith("file:"):
            raise SourcePolicyError(
                "A sqlite path is a plain file path: no 'file:' URI and no '?' or '#' "
                "(SQLite URI parameters are not accepted)."
            )
        resolved = Path(database).expanduser().resolve()
        inside = any(resolved.is_relative_to(root) for root in self.sqlite_roots)
        own = resolved in self.protected_paths or any(
            resolved.is_relative_to(folder) for folder in self.protected_dirs
        )
        if not inside or own:
            roots = ", ".join(str(r) for r in self.sqlite_roots) or "none configured"
            raise SourcePolicyError(
                f"The sqlite path {database!r} is not allowed: files must be under "
                f"FABRIC_SQLITE_ROOTS ({roots}) and must not be Fabric's own files."
            )
        return resolved

    # --- network hosts ------------------------------------------------------------------

    def check_host_name(self, host: str) -> None:
        """A host is one DNS name or one IP address: no socket folders, no host lists."""
        if _as_address(host) is None and not _DNS_NAME.match(host):
            raise SourcePolicyError(
                f"Host {host[:100]!r} is not a DNS name or an IP address (Unix socket folders, "
                "host lists and URLs are not accepted)."
            )
        if rule := self.hosts_deny.name_rule(host):
            raise SourcePolicyError(
                f"Host {host!r} is refused by FABRIC_SOURCE_HOSTS_DENY ({rule})."
            )

    def check_host(self, host: str) -> None:
        """What can be checked without a name lookup (when a connection is saved): the
        name's form, and the rules when the host is an IP address."""
        self.check_host_name(host)
        if (address := _as_address(host)) is not None:
            self._check_addresses(host, [address])

    def resolve(self, host: str, port: int | None) -> str:
        """The address to connect to for ``host``: every address it resolves to now passes
        the deny (and allow) rules; the first is returned so the driver connects to exactly
        the address that was checked."""
        self.check_host_name(host)
        addresses = self._addresses(host, port)
        self._check_addresses(host, addresses)
        return str(addresses[0])

    def _check_addresses(self, host: str, addresses: list[IPAddress]) -> None:
        for address in addresses:
            if rule := self.hosts_deny.address_rule(address):
                raise SourcePolicyError(
                    f"Host {host!r} resolves to {address}, refused by "
                    f"FABRIC_SOURCE_HOSTS_DENY ({rule})."
                )
        if self.hosts_allow and not self.hosts_allow.name_rule(host):
            for address in addresses:
                if not self.hosts_allow.address_rule(address):
                    raise SourcePolicyError(
                        f"Host {host!r} ({address}) is not in FABRIC_SOURCE_HOSTS_ALLOW."
                    )

    def _addresses(self, host: str, port: int | None) -> list[IPAddress]:
        literal = _as_address(host)
        if literal is not None:
            return [literal]
        future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
        try:
            infos = future.result(timeout=self.connect_timeout)
        except FutureTimeout:
            raise SourceUnreachableError(
                f"{host}: the name did not resolve within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise SourceUnreachableError(
                f"{host}: the name does not resolve ({exc.strerror or exc})"
            ) from None
        found: list[IPAddress] = []
        for info in infos:
            address = _as_address(str(info[4][0]))
            if address is not None and address not in found:
                found.append(address)
        if not found:
            raise SourceUnreachableError(f"{host}: the name resolves to no address")
        return found


def _as_address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
