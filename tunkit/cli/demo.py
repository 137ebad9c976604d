"""``tunkit demo``: run the guided demo in throwaway network namespaces; does I/O."""

from __future__ import annotations

from tunkit.cli._common import subparser

EPILOG = """\
Runs as root.  Creates anonymous network namespaces, never touches this host's
own network, and leaves nothing behind: the kernel frees the namespaces (with
their devices and routes) when the demo exits, even if it is interrupted.

example:
  sudo python3 -m tunkit demo
"""


def register(sub) -> None:
    p = subparser(sub, "demo", "show tunkit working, in throwaway network namespaces", epilog=EPILOG)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args) -> int:
    from tunkit.app import demo

    return demo.run()
