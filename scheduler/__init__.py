"""hetsched core: model import, platform, costs, problem, schedule, bounds, CLI.

Data flows one way: model -> TaskGraph -> (with Platform + costs) Problem ->
solver -> Schedule -> validate / bound / report.  See DESIGN.md.
"""

__version__ = "0.1.0"
