"""Storage.

The schema, the database engine and migrations, and the delivery ledger (the one writer of
deliveries and editions).
"""
