"""logz: sampling unnormalized densities and estimating log Z, with error bars.

Rooms (data flows left to right, no room imports from one to its right):
``sde`` -> ``targets`` -> ``samplers`` -> ``finetune`` / ``theory`` -> ``bench``.
"""

__version__ = "0.1.0"

from logz import sde, targets  # noqa: E402,F401
from logz import samplers  # noqa: E402,F401
from logz.samplers.estimators import LogZEstimate  # noqa: E402,F401

__all__ = ["sde", "targets", "samplers", "LogZEstimate", "__version__"]
