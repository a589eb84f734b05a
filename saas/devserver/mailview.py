"""`GET /dev/mail`: the messages the dev mail sink received, newest first (dev only)."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage
from html import escape
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

MAX_SHOWN = 200


def _messages(directory: Path) -> list[tuple[str, EmailMessage]]:
    if not directory.is_dir():
        return []
    files = sorted(directory.glob("*.eml"), reverse=True)[:MAX_SHOWN]
    out = []
    for path in files:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        out.append((path.name, msg))
    return out


def _summary(name: str, msg: EmailMessage) -> dict[str, Any]:
    body = msg.get_body(preferencelist=("plain",))
    return {"id": name, "from": str(msg.get("From", "")), "to": str(msg.get("To", "")),
            "subject": str(msg.get("Subject", "")), "date": str(msg.get("Date", "")),
            "listUnsubscribe": str(msg.get("List-Unsubscribe", "")) or None,
            "text": body.get_content() if body is not None else ""}


def endpoint(directory: Path) -> Any:
    async def mail(request: Request) -> Response:
        # A few small local files: read in a thread, not on the event loop.
        found = await asyncio.to_thread(_messages, directory)
        items = [_summary(n, m) for n, m in found]
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"messages": items})
        rows = "".join(
            f"<article><h2>{escape(i['subject'])}</h2><p><b>From</b> {escape(i['from'])} "
            f"<b>To</b> {escape(i['to'])} <b>Date</b> {escape(i['date'])}</p>"
            + (f"<p><b>List-Unsubscribe</b> {escape(i['listUnsubscribe'])}</p>"
               if i["listUnsubscribe"] else "")
            + f"<pre>{escape(i['text'])}</pre></article>" for i in items)
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>Dev mail</title>"
            "<style>body{font:14px system-ui;margin:2em;max-width:60em}article{border-top:1px "
            "solid #ccc;padding:.5em 0}pre{white-space:pre-wrap;background:#f6f6f6;"
            "padding:.5em}</style></head><body>"
            f"<h1>Mail received by the dev sink ({len(items)})</h1>"
            + (rows or "<p>No mail yet.</p>") + "</body></html>")

    return mail
