import sys

from ragbook.cli import main

sys.exit(main())
