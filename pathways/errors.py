"""Errors that explain bad input in the user's terms.

Every problem names where it was found: the file, the row (1-based, as a
spreadsheet shows it, or ``None`` for file-level problems) and the field.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input."""

    file: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}"


class InputError(ValueError):
    """Raised when an input file or parameter set cannot be used.

    ``problems`` lists every problem found (not only the first), so a user can
    fix a file in one go.
    """

    def __init__(self, problems: list[Problem] | Problem):
        if isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__(self._render())

    def _render(self) -> str:
        if len(self.problems) == 1:
            return str(self.problems[0])
        lines = [f"{len(self.problems)} problems found:"]
        lines += [f"  - {p}" for p in self.problems[:50]]
        if len(self.problems) > 50:
            lines.append(f"  ... and {len(self.problems) - 50} more")
        return "\n".join(lines)


class InfeasibleError(ValueError):
    """The optimiser cannot meet the scenario's constraints together.

    ``reasons`` are sentences in commissioners' words, e.g. "the budget cannot
    fund the locked services".
    """

    def __init__(self, reasons: list[str]):
        self.reasons = list(reasons)
        text = "No plan meets all the constraints: " + "; ".join(self.reasons)
        super().__init__(text)


class NoPlanInTimeError(ValueError):
    """The optimiser stopped on the clock before it found any plan.

    Not the same as :class:`InfeasibleError`: a plan may well exist; more time (or a
    looser gap) may find it.
    """

    def __init__(self, seconds: float, detail: str = ""):
        self.seconds = float(seconds)
        text = (
            f"No plan was found within the time limit of {self.seconds:.0f} s; "
            "allow more time and run again"
        )
        super().__init__(text + (f" ({detail})" if detail else ""))
