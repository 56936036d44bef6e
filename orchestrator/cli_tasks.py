"""Task commands (`tasks`) registered on the main app."""

from __future__ import annotations
