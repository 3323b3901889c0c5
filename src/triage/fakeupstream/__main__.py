"""`python -m triage.fakeupstream`: run the fake upstream server from the command line."""

import sys

from triage.fakeupstream.cli import main

if __name__ == "__main__":
    sys.exit(main())
