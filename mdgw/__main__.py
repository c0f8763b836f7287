import sys

from mdgw.cli import main

sys.exit(main())
