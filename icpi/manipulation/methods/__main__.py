"""Print the README's method table: ``python -m icpi.manipulation.methods``."""

import sys

from icpi.manipulation.methods import method_table

sys.stdout.write(method_table())
