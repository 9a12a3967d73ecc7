import sys

from rdc_client.cli import main

sys.exit(main())
