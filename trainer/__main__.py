"""`python -m trainer CONFIG` (what torchrun starts on every process); `aurora train CONFIG` for one."""

import sys

from trainer.train import main

sys.exit(main())
