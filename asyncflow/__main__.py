"""``python -m asyncflow``: the ``asyncflow`` command."""

import signal
import sys

if __name__ == "__main__":
    try:
        from ._cli import main

        code = main()
    except KeyboardInterrupt:  # Ctrl-C before main() could catch it
        code = 130
    # The command is over: a Ctrl-C from here to the exit changes nothing (prints nothing).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
