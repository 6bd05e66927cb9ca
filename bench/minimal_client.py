"""The yardstick: a fresh Python process that POSTs the product's search and json.loads it.

Nothing else: standard library only, no settings, no store. The steady scenario runs it beside
`reconciler sync` against the same served Hibob simulator.
Usage: python -m bench.minimal_client BASE_URL USER TOKEN FIELD,FIELD,...
"""

import base64
import json
import sys
import urllib.request


def main() -> None:
    base_url, user, token, fields = sys.argv[1:5]
    body = {"fields": fields.split(","), "showInactive": True, "humanReadable": "APPEND"}
    request = urllib.request.Request(
        base_url + "/people/search",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode(),
            "Content-Type": "application/json",
            "Accept": "application/json",
        },
    )
    with urllib.request.urlopen(request) as response:
        employees = json.loads(response.read())["employees"]
    print(len(employees))


if __name__ == "__main__":
    main()
