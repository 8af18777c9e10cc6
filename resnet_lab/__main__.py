import sys

from resnet_lab.cli import main

sys.exit(main())
