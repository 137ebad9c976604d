"""A tunkit host as a separate process for tests: ``python tests/tunnel_host.py JSON``; does I/O.

JSON: {"index", "peers": [{name, endpoint, prefixes, key (hex)}], "address4", "address6",
"listen", "mtu", "workers"}.  Creates the device, adds the addresses, prints "ready" and runs until
SIGTERM (or until killed: the kernel then removes the device with the process).
"""

import ipaddress
import json
import subprocess
import sys

from tunkit.overlay.node import TunnelNode
from tunkit.overlay.tunnel import PeerSpec

cfg = json.loads(sys.argv[1])
peers = [
    PeerSpec(p["name"], tuple(p["endpoint"]), tuple(ipaddress.ip_network(x) for x in p["prefixes"]),
             bytes.fromhex(p["key"]))
    for p in cfg["peers"]
]
node = TunnelNode(device=cfg["device"], peers=peers, listen=tuple(cfg["listen"]), mtu=cfg["mtu"],
                  addresses=[ipaddress.ip_address(cfg["address4"])], workers=cfg["workers"])
node.start()
subprocess.run(["ip", "addr", "add", cfg["address4"] + "/24", "dev", node.device_name], check=True)
subprocess.run(["ip", "addr", "add", cfg["address6"] + "/64", "dev", node.device_name, "nodad"], check=True)
print("ready", flush=True)
node.run()
node.close()
