"""Run watcher's command line with ``httpx2`` in place of ``httpx`` (benchmark only; same API)."""

import sys

import httpx2  # type: ignore[import-not-found,unused-ignore]  # bench/.peers only

sys.modules["httpx"] = httpx2

from watcher.cli import main  # noqa: E402 - httpx must be replaced first

sys.exit(main())
