"""What the fault switches of every sandbox have in common."""
from __future__ import annotations


class InvalidFault(ValueError):
    """A fault switch the admin endpoint refuses (unknown name, nonsense numbers): a 400 BAD_REQUEST."""
