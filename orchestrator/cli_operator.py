"""Operator commands (logs, inspect, shell, diff, dashboard, doctor) registered on the main app."""

from __future__ import annotations
