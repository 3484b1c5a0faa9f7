"""Typed errors. Library code raises these; only the CLI turns them into messages and exit codes.

Every error carries a message that quotes the bad value and says what was expected, and an
optional ``hint`` that says what to do next.
"""

from __future__ import annotations


class LlmpatchError(Exception):
    """Root of every error llmpatch raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class InvalidSpecError(LlmpatchError, ValueError):
    """A base-model spec, patch spec or version range could not be parsed."""

    exit_code = 2


class SchemaError(LlmpatchError, ValueError):
    """A JSON document (manifest, index, lock, ...) does not satisfy its JSON Schema."""


class ManifestError(SchemaError):
    """A patch manifest (llmpatch.json) is missing or invalid."""


class UnsafeFormatError(LlmpatchError):
    """A payload in a pickle-based format (.bin, .pt, .pkl, ...) was offered: refused."""


class IntegrityError(LlmpatchError):
    """Content does not match its recorded digest, or a file is corrupt or truncated."""


class SignatureError(IntegrityError):
    """A signature is missing, invalid, or made by an untrusted key."""


class FreshnessError(IntegrityError):
    """A registry index is older than one already seen, or has expired (rollback/freeze)."""


class BaseModelError(LlmpatchError):
    """A base model could not be found, resolved or loaded."""


class BaseMismatchError(LlmpatchError):
    """A patch was built for another base model than the one it is applied to."""


class CompositionError(LlmpatchError):
    """Patches cannot be stacked: budget exceeded, duplicate, missing requirement, conflict."""


class NotFoundError(LlmpatchError, LookupError):
    """A named patch, version, registry entry or environment does not exist."""


class RegistryError(LlmpatchError):
    """A registry refused an operation or could not be reached."""


class RegistryHTTPError(RegistryError):
    """A registry answered an HTTP error; ``status`` is its code (409/412: a concurrent writer won)."""

    def __init__(self, message: str, *, status: int | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class AlreadyPublishedError(RegistryError):
    """The exact name and version already exist in the registry (versions are immutable)."""


class ResolutionError(LlmpatchError):
    """No set of patch versions satisfies the requested specs, base and constraints."""


class EnvironmentStateError(LlmpatchError):
    """A patch environment is missing, corrupt, or in a state that forbids the operation."""


class LockTimeoutError(LlmpatchError, TimeoutError):
    """Another llmpatch process holds the lock for too long."""


class RecipeError(LlmpatchError, ValueError):
    """A build recipe is invalid."""

    exit_code = 2


class EvaluationError(LlmpatchError):
    """A verify/evaluation input (suite, prompt file, judge, policy) is invalid."""

    exit_code = 2


class PolicyViolation(LlmpatchError):
    """Evaluation finished, but one or more policy thresholds failed."""

    exit_code = 3
