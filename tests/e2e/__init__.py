"""End-to-end tests on a real Asterisk 22 (a package, so that its conftest
does not shadow tests/conftest.py as the module `conftest`)."""
