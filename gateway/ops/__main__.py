"""``python -m gateway.ops provision [--dry-run] | doctor``: no app is built, so these work
even when the app would refuse to start."""

from gateway.ops.commands import cli

if __name__ == "__main__":
    cli()
