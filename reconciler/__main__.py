import sys

from reconciler.commands.cli import main

sys.exit(main())
