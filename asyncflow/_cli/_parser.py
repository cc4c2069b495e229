"""The argument parser every asyncflow command line uses."""

from __future__ import annotations

import argparse
from typing import NoReturn

__all__ = ["OneLineParser"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a usage error as one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``<program>: error: <message>`` on stderr and exit with code 2."""
        root = self.prog.split()[0] if self.prog else "asyncflow"
        self.exit(2, f"{root}: error: {message} (see {self.prog} --help)\n")
