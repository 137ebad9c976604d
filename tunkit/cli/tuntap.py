"""``tunkit tuntap``: add, delete and list persistent TUN/TAP devices; does I/O.

Mirrors ``ip tuntap`` (devices made here are persistent, as there), but
``show`` also works inside a network namespace entered with ``setns`` or
``nsenter --net``, where ``ip tuntap show`` fails because ``/sys`` shows the
host: tunkit asks rtnetlink, whose ``IFLA_TUN_*`` attributes describe the
caller's namespace (see :func:`tunkit.tun.device.list_tun_devices`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import grp
import pwd

if TYPE_CHECKING:
    from tunkit.netlink.rtnl import LinkMessage

from tunkit.cli._common import EXIT_OK, CliError, add_json_flags, emit_json, parse_int, subparser

# TUNSETOWNER/TUNSETGROUP take the id as the ioctl's int argument: 0..2^31-1 here ((uid_t)-1 means "none").
MAX_ID = 2**31 - 1
NO_ID = 2**32 - 1  # IFLA_TUN_OWNER/GROUP report (uid_t)-1 for "not set"

ADD_EPILOG = """\
The device is persistent: it stays after tunkit exits, until 'tunkit tuntap del'.
NAME may be a template such as tk%d; the name the kernel chose is printed.

examples:
  tunkit tuntap add tk0                          # TUN, no packet info
  tunkit tuntap add tk1 --mode tap --user 1000   # TAP that uid 1000 may open
  tunkit tuntap add tk2 --multi-queue --vnet-hdr --group netdev
  tunkit tuntap add 'tk%d'                       # prints e.g. tk3
"""

DEL_EPILOG = """\
The mode is detected when not given.  A device held open by a process is only
made non-persistent; it disappears when that process closes it.

examples:
  tunkit tuntap del tk0
  tunkit tuntap del tk1 --mode tap
"""

SHOW_EPILOG = """\
Lists the TUN/TAP devices of the current network namespace with the flags the
kernel holds for them.  -j prints the shape 'ip -d -j link show' uses for
'linkinfo' (info_kind "tun", info_data type/pi/vnet_hdr/multi_queue/persist/
user/group/numqueues/numdisabled; queue counts come from rtnetlink).

examples:
  tunkit tuntap show
  tunkit tuntap show tk0 -j -p
  nsenter --net=/run/netns/blue tunkit tuntap show   # works where 'ip tuntap show' fails
"""


MODES = ("tap", "tun")  # tunkit.tun.device.MODES; spelled out so --help does not import the device layer


def register(sub) -> None:
    p = subparser(sub, "tuntap", help="add, delete and list persistent TUN/TAP devices",
                  description="Manage persistent TUN/TAP devices, like 'ip tuntap'.",
                  epilog="commands: add, del, show.  'tunkit tuntap COMMAND --help' for each.")
    cmds = p.add_subparsers(dest="tuntap_command", metavar="COMMAND")
    p.set_defaults(func=lambda args: _usage(p))

    add = subparser(cmds, "add", help="create a persistent TUN/TAP device", epilog=ADD_EPILOG)
    add.add_argument("name", metavar="NAME", help="device name (at most 15 bytes) or template like tk%%d")
    add.add_argument("--mode", choices=MODES, default="tun", help="tun (IP packets, default) or tap (Ethernet frames)")
    add.add_argument("--multi-queue", action="store_true", help="allow several queues (IFF_MULTI_QUEUE)")
    add.add_argument("--user", metavar="U", help="owner: user name or uid allowed to open it without CAP_NET_ADMIN")
    add.add_argument("--group", metavar="G", help="group name or gid allowed to open it")
    add.add_argument("--vnet-hdr", action="store_true", help="packets carry a virtio_net_hdr (IFF_VNET_HDR)")
    add.add_argument("--pi", action="store_true", help="packets carry struct tun_pi (no IFF_NO_PI)")
    add.add_argument("--create-node", action="store_true",
                     help="create /dev/net/tun (mknod c 10 200) first if it is missing, as nebula does")
    add.set_defaults(func=_add)

    rm = subparser(cmds, "del", help="delete a persistent TUN/TAP device", epilog=DEL_EPILOG)
    rm.add_argument("name", metavar="NAME", help="the device's name")
    rm.add_argument("--mode", choices=MODES, help="tun or tap (detected when omitted)")
    rm.set_defaults(func=_del)

    show = subparser(cmds, "show", help="list TUN/TAP devices and their flags", epilog=SHOW_EPILOG)
    show.add_argument("name", metavar="NAME", nargs="?", help="only this device")
    add_json_flags(show)
    show.set_defaults(func=_show)


def _usage(parser) -> int:
    parser.print_usage()
    raise CliError("tuntap: a command is required (add, del, show)")


def resolve_id(value: str | None, kind: str) -> int | None:
    """``--user``/``--group``: a name from the passwd/group database, or a number 0..2^31-1.

    Anything made of digits is a number and must be ASCII (full-width digits
    are refused, not looked up or converted); ValueError names the option and value.
    """
    if value is None:
        return None
    if value[:1] in "-+" or value.isdecimal() or value.lower().startswith("0x"):  # a number, as ip takes it
        return parse_int(value, f"--{kind}", 0, MAX_ID)
    try:
        return pwd.getpwnam(value).pw_uid if kind == "user" else grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"--{kind} {value!r}: no such {kind} (give a name or a number 0..{MAX_ID})") from None


def _add(args) -> int:
    from tunkit.tun import device

    owner, group = resolve_id(args.user, "user"), resolve_id(args.group, "group")  # before the device exists
    dev = device.open_tun(
        args.name, mode=args.mode, pi=args.pi, multi_queue=args.multi_queue,
        vnet_hdr=args.vnet_hdr, offloads=0 if args.vnet_hdr else None,  # like ip: set no offloads
        persist=True, owner=owner, group=group, create_node=args.create_node,
    )
    with dev:
        if "%" in args.name:
            print(dev.name)
    return EXIT_OK


def _del(args) -> int:
    from tunkit.tun import device

    device.delete(args.name, mode=args.mode)
    return EXIT_OK


def _user_name(uid: int) -> str | int:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry: ip prints the number too
        return uid


def _group_name(gid: int) -> str | int:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:  # no group entry: the number
        return gid


def _mode(link: "LinkMessage") -> str:
    return "tap" if link.linkinfo.data.type == 2 else "tun"  # IFLA_TUN_TYPE: IFF_TUN 1, IFF_TAP 2


def info_json(link: "LinkMessage") -> dict:
    """One device in the shape of ``ip -d -j link show`` (ifindex, ifname, linkinfo)."""
    info = link.linkinfo.data
    data: dict = {
        "type": _mode(link),
        "pi": bool(info.pi),
        "vnet_hdr": bool(info.vnet_hdr),
        "multi_queue": bool(info.multi_queue),
        "persist": bool(info.persist),
    }
    if info.owner is not None and info.owner != NO_ID:
        data["user"] = _user_name(info.owner)
    if info.group is not None and info.group != NO_ID:
        data["group"] = _group_name(info.group)
    if info.num_queues is not None:
        data["numqueues"], data["numdisabled"] = info.num_queues, info.num_disabled_queues or 0
    return {"ifindex": link.index, "ifname": link.ifname, "linkinfo": {"info_kind": "tun", "info_data": data}}


def info_text(link: "LinkMessage") -> str:
    """One line as ``ip tuntap show`` prints it (without its bogus "filter" word)."""
    info = link.linkinfo.data
    words = [f"{link.ifname}:", _mode(link)]
    words += [w for w, on in (("pi", info.pi), ("vnet_hdr", info.vnet_hdr),
                              ("multi_queue", info.multi_queue), ("persist", info.persist)) if on]
    if info.owner is not None and info.owner != NO_ID:
        words += ["user", str(info.owner)]
    if info.group is not None and info.group != NO_ID:
        words += ["group", str(info.group)]
    if info.num_queues is not None and info.multi_queue:
        words += ["queues", str(info.num_queues), "disabled", str(info.num_disabled_queues or 0)]
    return " ".join(words)


def _show(args) -> int:
    from tunkit.tun import device

    links = device.list_tun_devices()
    if args.name is not None:
        links = [link for link in links if link.ifname == args.name]
        if not links:
            raise CliError(f"tuntap show: no TUN/TAP device named {args.name!r} in this network namespace")
    if args.json:
        emit_json([info_json(link) for link in links], pretty=args.pretty)
    else:
        for link in links:
            print(info_text(link))
    return EXIT_OK
