#!/usr/bin/env python3
"""The AGI script Asterisk runs: AGI(queue_mobile_toggle.py,<queue>,<number>).
The wire contract with the dialplan is in qmt/toggle.py."""
from qmt.toggle import main

main()
