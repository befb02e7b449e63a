#!/usr/bin/env python3
"""Creates the items the benchmark's PUT phase replaces (used by tests/bench/run).

  seed.py BASE_URL HOST KEY COUNT

POSTs COUNT items with the ids put-0000, put-0001, ... (client-chosen ids)
to BASE_URL (the collection's URL) with `Host: HOST` and `x-api-key: KEY`,
over 8 keep-alive connections; fails unless every one is created (201).
"""

import http.client
import json
import sys
import threading
import urllib.parse


def main():
    base, host, key, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    url = urllib.parse.urlsplit(base)
    failures = []

    def worker(start):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        for i in range(start, count, 8):
            body = json.dumps(
                {"id": f"put-{i:04d}", "name": "Bench Put", "email": "put@example.com", "company": "Bench"}
            )
            conn.request(
                "POST",
                url.path,
                body=body,
                headers={"Host": host, "x-api-key": key, "content-type": "application/json"},
            )
            r = conn.getresponse()
            r.read()
            if r.status != 201:
                failures.append((i, r.status))
        conn.close()

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        sys.exit(f"seed.py: {len(failures)} items not created, first: {failures[:3]}")


if __name__ == "__main__":
    main()
