"""The native half of matdiff: the command line, run in-process."""

from typing import List, Tuple

def run(args: List[str]) -> Tuple[int, str, str]:
    """Runs ``matdiff ARGS...`` in-process; returns ``(status, stdout, stderr)``.

    The status is the command line's: 0 success, 1 a check or verification
    that fails, 2 an error (``stderr`` holds the rendered diagnostic, and with
    ``--json`` ``stdout`` the error object).
    """

def version() -> str:
    """The version of the matdiff engine the module was built from."""
