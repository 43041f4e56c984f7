"""Container HEALTHCHECK: exit 0 when the gateway's /metrics answers 200 (stdlib only).

The port comes from BMSGW_METRICS__PORT (the image sets 9108), the host is always loopback.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    """Probe the metrics endpoint once."""
    port = os.environ.get("BMSGW_METRICS__PORT", "9108")
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=4) as reply:
            ok = reply.status == 200 and b"bms_" in reply.read()
    except (urllib.error.URLError, OSError) as err:
        print(f"unhealthy: {url}: {err}", file=sys.stderr)
        return 1
    if not ok:
        print(f"unhealthy: {url} did not return the gateway's metrics", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
