import sys

from graywsgi.cli.main import main

sys.exit(main())
