"""Exception types whose message is a complete one-line explanation for the user.

The CLI prints ``str(error)`` of any :class:`HetschedError` and exits with code 2,
so every raise site must name the problem (file, key, task, device) in the message.
"""


class HetschedError(Exception):
    """Base class: a user-facing error with a one-line message."""


class ModelError(HetschedError):
    """The ONNX model cannot be read or turned into a task graph."""


class PlatformError(HetschedError):
    """The platform description is malformed or inconsistent."""


class ProblemError(HetschedError):
    """A problem (graph + platform + costs) is malformed or inconsistent."""


class ScheduleError(HetschedError):
    """A schedule or placement is malformed or does not fit its problem."""


class SolverError(HetschedError):
    """Unknown solver, unknown option, or a solver that cannot run."""


class ConfigError(HetschedError):
    """A run configuration is malformed."""
