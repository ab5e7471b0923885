import sys

from multimodal_tf.cli import main

sys.exit(main())
