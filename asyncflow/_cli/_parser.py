"""The argument parser every asyncflow command line uses."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

__all__ = ["OneLineParser", "add_logs_options"]


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser that reports a usage error as one line and exit code 2, and takes
    options only as written in full: ``--epoch 3`` is an unknown option, not ``--epochs``
    (argparse's prefix matching would make a typo set another parameter silently).

    Subparsers made with ``parser_class=OneLineParser`` behave the same.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Print ``<program>: error: <message>`` on stderr and exit with code 2."""
        root = self.prog.split()[0] if self.prog else "asyncflow"
        self.exit(2, f"{root}: error: {message} (see {self.prog} --help)\n")


class OneStoreOption(argparse.Action):
    """Metaflow's ``--datastore``, ``--datastore-root`` and ``--metadata``: asyncflow keeps
    artifacts and metadata in one store file, so each is a usage error that names
    ``--store`` (one line, exit code 2)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            f"{option_string}: asyncflow keeps a run's artifacts and metadata in one store "
            "file; choose it with --store PATH"
        )


def add_logs_options(parser: argparse.ArgumentParser) -> None:
    """``--stdout | --stderr`` and ``--follow``, as ``logs`` takes them."""
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--stdout", action="store_true", help="only stdout")
    which.add_argument("--stderr", action="store_true", help="only stderr")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="then print the lines of the run's running tasks as they come, until it ends",
    )
