"""Runs scim2-tester's check_server against a SCIM server and prints the results as JSON.

    python run_scim2_tester.py <base URL>

The bearer token comes from the SCIM_TOKEN environment variable (not the command line,
which other users of the machine can read). Every resource type the server publishes in
/ResourceTypes is checked, with every tag: nothing is filtered out here. The output is
one JSON object on stdout: {"results": [{title, target, status, reason, resourceType, tags,
data}]}, where target is the attribute a PATCH check worked on (its checks share a title).
"""

import json
import os
import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server


def printable(value, limit=2000):
    if value is None:
        return None
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def main() -> None:
    base_url = sys.argv[1]
    token = os.environ["SCIM_TOKEN"]
    http = Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    client = SyncSCIMClient(http)
    results = check_server(client)
    json.dump(
        {
            "results": [
                {
                    "title": r.title,
                    "target": r.data.get("urn") if isinstance(r.data, dict) else None,
                    "status": r.status.name,
                    "reason": r.reason,
                    "resourceType": r.resource_type,
                    "tags": sorted(r.tags),
                    "data": printable(r.data),
                }
                for r in results
            ]
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
