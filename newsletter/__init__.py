"""A calm weekly reflection newsletter: Markdown issues, theme rotation, exact delivery, one-click leave."""

__version__ = "0.1.0"
