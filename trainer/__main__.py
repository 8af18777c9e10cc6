"""`python -m trainer --help` lists every flag."""

import sys

from trainer.cli import main

sys.exit(main())
