"""A local Rithmic gateway: R|Protocol over WebSocket with a deterministic synthetic market.

Run it with ``python -m simulator``; tests start it through :mod:`simulator.testing`.
"""
