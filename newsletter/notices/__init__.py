"""Notes to the author: what the scheduler tells her (or logs) when something needs her."""
