"""Simulated market and venue servers speaking each venue's native wire format on loopback.

`start_sim` (sim.server) is the entry point; `market.Market` is the pure simulation.
"""
