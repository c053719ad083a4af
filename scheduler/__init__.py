"""hetsched core: model import, platform, costs, problem, schedule, bounds, CLI.

Data flows one way: model -> TaskGraph -> (with Platform + costs) Problem ->
solver -> Schedule -> validate / bound / report.  The execution semantics every part shares:
docs/semantics.md.
"""

__version__ = "0.1.0"
