"""A calm weekly reflection newsletter: Markdown issues, themes, exact delivery, one-click leave."""

__version__ = "0.1.0"
