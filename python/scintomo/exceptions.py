"""Exceptions raised by scintomo.

Every error scintomo raises on bad input is a :class:`ScintomoError` and also
the builtin exception a caller would expect (``ValueError`` for shapes and
parameters, ``TypeError`` for dtypes), so both ``except ScintomoError`` and
``except ValueError`` work. The Rust kernels raise the same classes.
"""

from __future__ import annotations


class ScintomoError(Exception):
    """Base class of every error scintomo raises on purpose."""


class ShapeError(ScintomoError, ValueError):
    """Arrays whose shapes do not fit together, or an empty array."""


class ParameterError(ScintomoError, ValueError):
    """A parameter outside its valid range or of the wrong kind."""


class DTypeError(ScintomoError, TypeError):
    """An array of a dtype that cannot hold image data (complex, object...)."""


class NonFiniteError(ScintomoError, ValueError):
    """NaN or infinity where finite values are required."""


class NumericalError(ScintomoError, ArithmeticError):
    """A computation without a meaningful result (e.g. a zero flat field)."""


class MemoryLimitError(ScintomoError, MemoryError):
    """A call that would need more memory than the system has available now
    (checked before allocating; the message names the parameter that sets
    the size)."""


class FileFormatError(ScintomoError, ValueError):
    """A file that is missing a dataset, truncated, or inconsistent."""


class StaleOutputError(ScintomoError, ValueError):
    """An output on disk that another run produced (other input, parameters or version):
    resuming into it would mix two volumes."""


class ScintomoWarning(UserWarning):
    """Something the user should know about a result (counts of clipped or
    invalid pixels, an unreliable measurement)."""


__all__ = [
    "DTypeError",
    "FileFormatError",
    "MemoryLimitError",
    "NonFiniteError",
    "NumericalError",
    "ParameterError",
    "ScintomoError",
    "ScintomoWarning",
    "ShapeError",
    "StaleOutputError",
]
