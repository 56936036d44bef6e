"""One exception root for the host side.

FreshError                 anything the user can act on; carries a `hint`
 ├── ConfigError           bad flag, bad policy file, unknown model price
 ├── PreflightError        no daemon, missing image, not a git repo, dirty tree, no remote
 ├── BudgetExhausted       a model call would exceed the agent's or the run's budget
 ├── ModelError            endpoint unreachable, key refused, malformed answer after retries
 ├── GateError             the test gate could not reach a verdict
 └── PushError             importing or pushing the agent's commits failed

The CLI turns each into one line plus the hint and a non-zero exit code.
"""

from __future__ import annotations


class FreshError(Exception):
    """Root of every error the user can act on."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(FreshError):
    """A flag, policy file or price that cannot be used."""


class PreflightError(FreshError):
    """Something the run needs is missing before anything starts."""


class BudgetExhausted(FreshError):
    """The next model call could exceed a budget, so it was not made."""

    exit_code = 3


class ModelError(FreshError):
    """The model endpoint failed in a way retries did not fix."""


class GateError(FreshError):
    """The test gate could not run or could not reach a verdict."""


class PushError(FreshError):
    """The agent's work could not be imported or pushed."""
