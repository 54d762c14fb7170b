import sys

from esb.cli import main

sys.exit(main())
