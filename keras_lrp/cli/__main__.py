"""``python -m keras_lrp.cli``: the ``keras-lrp`` command."""

import sys

from keras_lrp.cli.app import main

sys.exit(main())
