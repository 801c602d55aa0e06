# One target per test layer (tests/layers.py), for a developer's loop.
# The whole suite, with every set-up step, is tests/run.sh (the README's
# test command, and CI's); these targets assume it ran once (.venv exists).
#
#   make rules     pure rules and the installation's files       (seconds)
#   make agi       the AGI script over a fake Asterisk, `qmt`     (~2.5 min)
#   make servers   the same on real MariaDB and PostgreSQL        (as root: starts them)
#   make lint      ruff, mypy, shellcheck
#   make e2e       real Asterisk in a Debian sid chroot           (as root, ~17 min)
#   make test      all of it: tests/run.sh

PYTEST = .venv/bin/python -m pytest

.PHONY: rules agi servers lint e2e test

rules:
	$(PYTEST) -q -m rules

agi:
	$(PYTEST) -q -m "agi and not servers"

servers:
	bash .ci/db-servers.sh
	$(PYTEST) -q -m "servers and not e2e"

lint:
	$(PYTEST) -q -m lint

e2e:
	$(PYTEST) -q tests/e2e

test:
	bash tests/run.sh
