"""Recent alerts and the state of each delivery, as ``watcher alerts`` shows them.

One block per alert, newest first::

    #12  2025-09-03 02:14 UTC  open  high  trio-together  Xi Jinping appears with Putin and Kim ...
         3 sources: The Guardian, Japan Today, Sky News  (story 4)  key watcher-5f0c...
         hook: pending, 3 attempts, next 02:20 UTC: HTTP 500 Internal Server Error
         mail: held for the next digest
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from watcher.store import Store


def _when(text: str | None) -> str:
    return f"{text[:16].replace('T', ' ')} UTC" if text else "-"


def _delivery(d: dict[str, Any]) -> str:
    state = str(d["state"])
    attempts = int(d.get("attempts") or 0)
    tried = f", {attempts} attempt{'s' if attempts != 1 else ''}" if attempts else ""
    if state == "sent":
        text = f"sent {_when(d.get('sent_at'))}{tried}"
    elif state == "held":
        text = "held for the next digest"
    elif state == "digested":
        text = f"sent in digest #{d.get('digest_id')}" if d.get("digest_id") else "in a digest"
    elif state == "pending":
        hold = d.get("hold_until")
        due = f"quiet hours until {_when(hold)}" if hold else f"next {_when(d.get('next_attempt_at'))}"
        text = f"pending{tried}, {due}"
    else:
        text = f"{state}{tried}"
    error = d.get("last_error")
    if error and state != "sent":
        text += f": {error}"
    return f"{d['channel']}: {text}"


def alert_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Text lines for ``Store.recent_alerts`` rows (newest first)."""
    out: list[str] = []
    for a in rows:
        payload = a.get("payload") or {}
        out.append(
            f"#{a['id']}  {_when(a['created_at'])}  {a['kind']}  {a['severity']}  {a.get('rule_id') or '-'}"
            f"  {a['title']}"
        )
        sources = payload.get("sources") or []
        detail = (
            [f"{len(sources)} source{'s' if len(sources) != 1 else ''}: {', '.join(sources)}"]
            if sources
            else []
        )
        if a.get("story_id"):
            detail.append(f"(story {a['story_id']})")
        detail.append(f"key {a['dedupe_key']}")
        out.append("     " + "  ".join(detail))
        out.extend(f"     {_delivery(d)}" for d in a.get("deliveries", ()))
        if not a.get("deliveries"):
            out.append("     no channel takes this alert")
    return out


def recent(store: Store, *, limit: int = 20) -> list[dict[str, Any]]:
    """The latest alerts with their deliveries (channel, state, attempts, errors, holds, digest)."""
    alerts = store.recent_alerts(limit)
    for a in alerts:
        a["deliveries"] = list(
            store.db.query(
                "SELECT channel, state, attempts, last_error, sent_at, next_attempt_at, hold_until, digest_id"
                " FROM deliveries WHERE alert_id = ? ORDER BY channel",
                [a["id"]],
            )
        )
    return alerts


def retry(store: Store, alert_id: int, *, now: datetime) -> int:
    """Queue an alert's failed or waiting deliveries again, due now; the number queued."""
    return store.retry_alert(alert_id, now=now)
