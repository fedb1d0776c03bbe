"""Publishing.

The author's issue files and queue, the schedule and theme rotation, settling editions.
"""
