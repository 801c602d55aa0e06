"""`python -m qmt`: the same as the `qmt` command."""
from qmt.cli import run

run()
