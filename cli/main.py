"""Entry point: importing the command modules registers their commands on `app`."""

from embedlab_cli.app import app
from embedlab_cli import datasets, demo, encode, features, fit, predict, report, runs  # noqa: F401  (registers commands)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
