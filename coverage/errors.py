"""The whole exception hierarchy.

Every class also subclasses a builtin so callers that do not know this package
can still catch it sensibly. Messages name the file, row, column, what was
expected and what was found; the CLI turns any :class:`CoverageError` into one
line on stderr and exit code 2.
"""

from __future__ import annotations


class CoverageError(Exception):
    """Base class for problems the user can fix (input, configuration)."""


class ConfigError(CoverageError, ValueError):
    """The run configuration is malformed (unknown key, wrong type, bad value)."""


class InputDataError(CoverageError, ValueError):
    """An input file was readable but its content breaks a contract."""


class SchemaError(InputDataError):
    """Required columns are missing or have unusable types."""


class CRSMismatchError(InputDataError):
    """Two spatial inputs are in different CRSs where the same one is required."""


class UnknownCodeError(InputDataError):
    """A value from a closed vocabulary (technology, status, AGS) is not known."""


class DataSourceError(CoverageError, OSError):
    """A file cannot be found, opened or decoded at all."""


class OutputError(CoverageError, OSError):
    """An output folder cannot be written (read-only, full disk, no permission)."""
