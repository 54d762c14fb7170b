"""`esb as2 keys NAME [--dir DIR] [--days N]`: a self-signed certificate and key for testing AS2."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_as2_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["keys"])
    parser.add_argument("name", help="the certificate's common name and the files' base name")
    parser.add_argument("--dir", default=".", help="where NAME.crt and NAME.key are written (default: .)")
    parser.add_argument("--days", type=int, default=365, help="days the certificate is valid (default 365)")


def run_as2(args: argparse.Namespace) -> int:
    """Write NAME.crt and NAME.key, refusing to overwrite either; print where they are."""
    from adapters.as2.keys import make_pair, write_pair
    from esb.cli import CommandFailed

    directory = Path(args.dir)
    existing = [path for path in (directory / f"{args.name}.crt", directory / f"{args.name}.key")
                if path.exists()]
    if existing:
        raise CommandFailed(f"as2 keys: {existing[0]} exists; remove it or choose another name or --dir")
    cert, key = make_pair(args.name, days=args.days)
    cert_path, key_path = write_pair(cert, key, directory, args.name)
    print(f"{cert_path}: self-signed certificate CN={args.name}, valid {args.days} days (send it to the "
          f"partner)\n{key_path}: its private key (keep it; for testing, not production)")
    return 0
