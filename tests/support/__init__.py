"""What the tests share: real databases, SMTP relays, web servers, the CLI, readers and issue files.

Test modules import from here, never from each other or from conftest.
"""
