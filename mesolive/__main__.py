import sys

from mesolive.cli import main

sys.exit(main())
