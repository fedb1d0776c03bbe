"""Delivery.

The engine, how senders share a database, pacing and caps, and the pure retry and bounce
decisions.
"""
