"""The image's HEALTHCHECK: 0 when /healthz answers 200 on this container's port (standard library
only: the slim base has no curl)."""
import os
import sys
import urllib.request

try:
    with urllib.request.urlopen(f"http://127.0.0.1:{os.environ.get('PORT', '5000')}/healthz", timeout=4) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except OSError:
    sys.exit(1)
