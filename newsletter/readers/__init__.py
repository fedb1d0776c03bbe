"""Readers.

Addresses, subscriptions, sign-up, consent and privacy; the one writer of subscriber state and
the consent log.
"""
