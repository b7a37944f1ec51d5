"""Server-rendered pages: one blueprint per module."""
