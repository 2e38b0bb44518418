"""Entry point: importing the command modules registers their commands on `app`."""

import gc

from embedlab_cli.app import app
from embedlab_cli import datasets, demo, encode, features, fit, predict, report, runs  # noqa: F401  (registers commands)


def main() -> None:
    try:
        app()
    finally:
        # Nothing is left to collect once a command is done: frozen, the objects PyTorch and the
        # models made are not traversed again on the way out (0.2-0.5 s of a one-photo predict).
        gc.freeze()


if __name__ == "__main__":
    main()
