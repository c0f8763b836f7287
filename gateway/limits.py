"""Connection limits of one gateway process: per address group and in total.

A connection is counted from the moment its handshake passes ``process_request``
(which ``websockets`` runs synchronously, so two handshakes in flight cannot both
see room for one) until its TCP connection is lost, whether or not the handshake
completed. IPv6 clients are grouped by /64: one host usually owns a whole /64 and
could otherwise open connections from 2^64 addresses. Every limit here is per
process: with ``--workers N`` the kernel spreads connections over N processes, so
the effective limit is up to N times the setting (docs/security.md).

Also: the open-file limit, raised at start to what the hard limit allows (each
connection is a file descriptor).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

IPV6_GROUP_PREFIX = 64


def address_group(ip: str) -> str:
    """The key a client address is counted under: IPv4 as is, IPv6 by its /64."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip  # not an address (a Unix socket, a test): counted as itself
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        net = ipaddress.IPv6Network((addr, IPV6_GROUP_PREFIX), strict=False)
        return str(net)
    return str(addr)


@dataclass
class ConnectionCounter:
    """Open connections in total and per address group; ``per_group`` 0 = no cap."""

    total_cap: int
    per_group: int
    total: int = 0
    groups: dict[str, int] = field(default_factory=dict)

    def acquire(self, group: str) -> str | None:
        """Count one connection; None when admitted, else why not ("full" or "address")."""
        if self.total >= self.total_cap:
            return "full"
        n = self.groups.get(group, 0)
        if self.per_group and n >= self.per_group:
            return "address"
        self.groups[group] = n + 1
        self.total += 1
        return None

    def release(self, group: str) -> None:
        n = self.groups.get(group, 0)
        if n <= 0:
            return  # released twice: never go negative
        self.total -= 1
        if n == 1:
            del self.groups[group]
        else:
            self.groups[group] = n - 1


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns (soft, hard) after, logged."""
    try:
        import resource
    except ImportError:  # not POSIX
        return (0, 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            log.info("open-file limit raised from %d to %d (the hard limit)", soft, target)
            return (target, hard)
        except (ValueError, OSError) as e:
            log.warning("open-file limit stays %d (raising to %d failed: %s)", soft, target, e)
            return (soft, hard)
    log.info("open-file limit %d (hard limit %s)", soft, hard)
    return (soft, hard)
