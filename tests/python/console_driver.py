"""Drives `rootcellar ceremony run` through a real pseudo-terminal, as an operator would type at
the console: accept the clock, enter names, and type each step's confirmation code as shown.

    console_driver.py -- ROOTCELLAR_ARGS...

Exits 0 when the ceremony reports completion; prints the whole session on failure."""

import os
import pty
import re
import select
import sys
import time


def main() -> int:
    argv = sys.argv[sys.argv.index("--") + 1 :]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    session = b""
    answered = 0
    deadline = time.time() + 120
    # Who answers each "Name of ROLE N" prompt; everything else listed is answered empty (done).
    names = {("operator", "1"): "Olga Operator", ("witness", "1"): "Wim Witness",
             ("witness", "2"): "Wanda Witness"}
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        session += chunk
        pending = session[answered:].decode(errors="replace")
        code = re.search(r"Type ([0-9a-f]{8}) to perform step", pending)
        if "Press Enter to accept it" in pending:
            os.write(fd, b"\n")
        elif re.search(r"(Enter to write the share down instead|Press Enter to show the share"
                       r"|press Enter to clear the screen): $", pending):
            # No age recipient: the custodian writes the share down.
            os.write(fd, b"\n")
        elif pending.endswith("(not echoed): ") and "type your share back" in pending:
            # Typed back from the paper: the numbered lines of groups just shown.
            text = session.decode(errors="replace")
            shown = text[text.rfind("Press Enter to show the share"):]
            groups = re.findall(r"^\s*\d+: ((?:[0-9a-f]{3,5} ?)+?)\s*$", shown, re.M)
            os.write(fd, (" ".join(groups) + "\n").encode())
        elif asked := re.search(r"Name of ([\w-]+) (\d+) \((required|Enter when done)\): $", pending):
            role, number = asked.group(1), asked.group(2)
            name = names.get((role, number), "")
            if role.startswith("custodian-") and number == "1":
                # Each custodian role the script names has its own person.
                name = "Custodian " + role.removeprefix("custodian-")
            os.write(fd, (name + "\n").encode())
        elif code and pending.rstrip().endswith("to stop here:"):
            # A wrong code first: the console must refuse it and ask again.
            if "That is not the confirmation code." not in session.decode(errors="replace"):
                os.write(fd, b"00000000\n")
            else:
                os.write(fd, (code.group(1) + "\n").encode())
        else:
            continue
        answered = len(session)
    else:
        # Out of time (a prompt the driver does not know, asked again and again): stop the
        # ceremony rather than wait for it for ever.
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    text = session.decode(errors="replace")
    if os.WEXITSTATUS(status) != 0 or "ceremony complete" not in text:
        sys.stderr.write(text)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
