import sys

from graywsgi.cli.commands import main

sys.exit(main())
