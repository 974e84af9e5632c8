import sys

from searchhub.cli import main

sys.exit(main())
