"""The `ebops` command: the duty commands of flows/cli.py and the sandbox hospital's (sandbox/cli.py).

Put together here, above both, so that flows/ never imports sandbox/ (the sandbox's commands
need the flows to run the demo; the flows must not know the demo hospital exists).
"""
from __future__ import annotations

from flows import cli
from sandbox.cli import register


def main() -> None:
    register(cli.app)
    cli.main()


if __name__ == "__main__":
    main()
