"""`python -m multimodal_tf`: the `multimodal-tf` command."""

import sys

from multimodal_tf.cli import main

sys.exit(main())
