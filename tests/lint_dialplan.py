#!/usr/bin/env python3
"""Run `asterisklint dialplan-check` on our dialplan file.

asterisklint reads a whole extensions.conf, so this wrapper writes one into a
temporary folder: it #includes our file and stubs the FreePBX contexts the
toggle relies on (outbound-allroutes, where the Local/ member's calls go).
Usage: python3 tests/lint_dialplan.py [path/to/extensions_queue_mobile_toggle.conf]
Exit status and output are asterisklint's.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIALPLAN = os.path.join(REPO, "agi", "extensions_queue_mobile_toggle.conf")

FREEPBX_STUBS = """\
[general]
static=yes
writeprotect=no

[globals]

; Stand-in for FreePBX's outbound routes: queue calls to
; Local/<number>@outbound-allroutes/n land here.
[outbound-allroutes]
exten => _X!,1,NoOp(outbound route stub for ${EXTEN})
 same => n,Hangup()

#include extensions_queue_mobile_toggle.conf
"""

# What asterisklint 0.4.3 does not know but Asterisk 22 has (func_lock, func_channel's CHANNEL_EXISTS,
# func_cdr's CDR_PROP, Originate's 7th argument, the options: all seen running in tests/e2e): only these
# findings are dropped.
UNKNOWN_TO_ASTERISKLINT = re.compile(r"E_FUNC_MISSING: function '(?:LOCK|UNLOCK|CHANNEL_EXISTS|CDR_PROP)' "
                                     r"does not exist"
                                     r"|E_APP_ARG_MANY: too many arguments for app 'Originate', maximum is 6")

RUN_ASTERISKLINT = ("import os, sys; from asterisklint.main import main; "
                    "sys.exit(main(sys.argv[1:], os.environ))")


def lint(dialplan_path=DIALPLAN):
    """(exit status, output) of asterisklint on the dialplan."""
    folder = tempfile.mkdtemp(prefix="qmt-lint-")
    try:
        shutil.copy(dialplan_path, os.path.join(folder, "extensions_queue_mobile_toggle.conf"))
        with open(os.path.join(folder, "extensions.conf"), "w", encoding="utf-8") as handle:
            handle.write(FREEPBX_STUBS)
        done = subprocess.run(
            [sys.executable, "-c", RUN_ASTERISKLINT, "dialplan-check", "extensions.conf"],
            cwd=folder, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, HOME=folder))
        findings = [line for line in (done.stdout + done.stderr).strip().splitlines()
                    if not UNKNOWN_TO_ASTERISKLINT.search(line)]
        return (done.returncode if findings else 0), "\n".join(findings)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    status, output = lint(sys.argv[1] if len(sys.argv) > 1 else DIALPLAN)
    print(output or "asterisklint: no findings")
    sys.exit(status)
