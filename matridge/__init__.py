"""matridge: a Matrix gateway for XMPP, built on slidge.

Importing the package registers its classes with slidge.
"""

from . import commands, config  # noqa: F401  (registers commands and options)
from .gateway import Gateway
from .group import MUC, Bookmarks, Participant
from .session import Session

__version__ = "0.1.0"

__all__ = ["MUC", "Bookmarks", "Gateway", "Participant", "Session"]
