"""The web app.

The app factory, shared page plumbing, guards, and one module per group of routes.
"""
