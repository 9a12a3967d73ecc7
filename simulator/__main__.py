"""``python -m simulator``: run the gateway until SIGINT or SIGTERM.

Prints one line on stdout once it listens (``simulator.testing`` reads it); logs go to stderr
as JSON lines.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys

from simulator.config import from_args
from simulator.server import Simulator

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


async def main(argv: list[str] | None = None) -> None:
    config = from_args(argv)
    # Tapes hold millions of small tuples; with the default thresholds the cyclic collector
    # rescans them so often that it costs two thirds of the send rate. Nothing here makes cycles
    # at that pace, so collect far less often.
    gc.set_threshold(100_000, 50, 100)
    sim = Simulator(config)
    await sim.start()
    line = f"rithmic simulator listening on {sim.url} control {sim.control_url} seed={config.seed} rate={config.rate}"
    if sim.cert_file is not None:
        line += f" cert={sim.cert_file}"
    print(line, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await sim.stop()


if __name__ == "__main__":
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    asyncio.run(main())
