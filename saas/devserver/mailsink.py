"""The development mail sink: a real SMTP server on loopback that keeps what it receives.

    python -m saas.devserver.mailsink --port 1025 --dir .data/mail

Each message is stored as `<dir>/<time>-<n>.eml` (the bytes as received, with the envelope
in `X-Envelope-*` headers in front) and announced on the console; `GET /dev/mail` in the API
(dev only, saas/devserver/mailview.py) lists and shows them.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

_counter = itertools.count(1)


class Keep:
    """aiosmtpd handler: write every accepted message to the directory."""

    def __init__(self, directory: Path, *, announce: bool = True) -> None:
        self.directory = directory
        self.announce = announce
        directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        raw = content if isinstance(content, bytes) else str(content).encode()
        head = (f"X-Envelope-From: {envelope.mail_from}\r\n"
                f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n").encode()
        name = f"{time.time_ns()}-{next(_counter):05d}.eml"
        tmp = self.directory / (name + ".tmp")
        tmp.write_bytes(head + raw)
        tmp.replace(self.directory / name)
        if self.announce:
            msg = message_from_bytes(raw, policy=policy.default)
            print(f"[mail] to {', '.join(envelope.rcpt_tos)}: {msg.get('Subject', '')}",
                  flush=True)
        return "250 Message accepted for delivery"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="saas.devserver.mailsink")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    args = parser.parse_args(argv)
    controller = Controller(Keep(Path(args.dir)), hostname=args.host, port=args.port)
    controller.start()

    async def wait_for_signal() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait_for_signal())
    finally:
        controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
