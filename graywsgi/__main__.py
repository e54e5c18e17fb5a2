import sys

from graywsgi.cli import main

sys.exit(main())
