"""Entry point: answers `--version` before any heavy import, then hands over to the CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] in (["--version"], ["-V"]):
        from drawer import __version__

        sys.stdout.write(f"drawer {__version__}\n")
        raise SystemExit(0)
    from drawer.cli import main as cli_main

    cli_main(args)


if __name__ == "__main__":
    main()
