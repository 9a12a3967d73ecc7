"""rdc_client: the RithmicDataCollector API from research code, as pandas DataFrames.

    from rdc_client import Client

    with Client("http://127.0.0.1:8080") as rdc:
        ticks = rdc.ticks("ESZ6", "2026-11-23", "2026-11-24")
        bars = rdc.bars("ESZ6", "2026-11-01", "2026-12-01", interval="1h")

Install with the project's `client` extra (`pip install -e '.[client]'`). `python -m rdc_client`
downloads a range to CSV or Parquet from the command line.
"""

from .client import Book, Client, parse_time
from .errors import RdcApiError

__all__ = ["Book", "Client", "RdcApiError", "parse_time"]
__version__ = "2.0.0"
