"""iproute2's defaults for route requests (table, protocol, scope, type); pure, no I/O.

``ip route add|replace|append|prepend|change`` fills in what the user left
out before it sends RTM_NEWROUTE, and ``ip route del`` does the same for
RTM_DELROUTE (ip/iproute.c, ``iproute_modify``):

* not deleting: protocol ``boot``, type ``unicast``;
* deleting: protocol, type unset (0: match any) and scope ``nowhere`` (any);
* table: ``local`` for local, broadcast, nat and anycast routes, else
  ``main`` (tunkit leaves it unset when deleting: the kernel reads
  RT_TABLE_UNSPEC as main, and ``Rtnl.delete_route(table=...)`` can say
  otherwise);
* scope: IPv6 routes are always ``global`` (the kernel has no other);
  local and nat routes ``host``; broadcast, multicast and anycast ``link``;
  a unicast route without a gateway, nexthops or nexthop id ``link``, with
  one ``global``.

:func:`route_defaults` is that rule as a function of plain ints, so the
client, the CLI and the tests share one answer.
"""

from __future__ import annotations

from tunkit._uapi import AF_INET6, RT_TABLE_LOCAL, RT_TABLE_MAIN, RTN, RTPROT_BOOT, RtScope

__all__ = ["route_defaults"]

# plain ints (this runs once per route of a bulk add; enum member access costs more)
_UNSPEC, _UNICAST, _LOCAL, _NAT = int(RTN.UNSPEC), int(RTN.UNICAST), int(RTN.LOCAL), int(RTN.NAT)
_LOCAL_TABLE_TYPES = (int(RTN.LOCAL), int(RTN.BROADCAST), int(RTN.NAT), int(RTN.ANYCAST))
_LINK_SCOPED_TYPES = (int(RTN.BROADCAST), int(RTN.MULTICAST), int(RTN.ANYCAST))
_UNIVERSE, _LINK, _HOST, _NOWHERE = int(RtScope.UNIVERSE), int(RtScope.LINK), int(RtScope.HOST), int(RtScope.NOWHERE)


def route_defaults(verb: str, family: int, table: int | None = None, protocol: int | None = None,
                   scope: int | None = None, type: int | None = None,
                   gateway: bool = False) -> tuple[int | None, int, int, int]:
    """``(table, protocol, scope, type)`` as ``ip route VERB`` sends them: given values win.

    ``gateway`` is whether the route has a gateway, an RTA_VIA, nexthops or
    a nexthop id (any of them makes a unicast route's scope global).
    ``table`` None means no table is sent.  A plain tuple, not a NamedTuple:
    bulk adds call this once per route.
    """
    deleting = verb == "delete"
    rtype = type if type is not None else (_UNSPEC if deleting else _UNICAST)
    if table is None and not deleting:
        table = RT_TABLE_LOCAL if rtype in _LOCAL_TABLE_TYPES else RT_TABLE_MAIN
    if protocol is None:
        protocol = 0 if deleting else RTPROT_BOOT
    if scope is None:
        if family == AF_INET6:
            scope = _NOWHERE if deleting else _UNIVERSE
        elif rtype == _LOCAL or rtype == _NAT:
            scope = _HOST
        elif rtype in _LINK_SCOPED_TYPES:
            scope = _LINK
        elif deleting:
            scope = _NOWHERE
        elif rtype <= _UNICAST and not gateway:
            scope = _LINK
        else:
            scope = _UNIVERSE
    return table, protocol, scope, rtype
