"""How much load a function may bring to a node and how many VMs it gets for it: the rule
(:mod:`~scheduler.scaling.policy`: Knative-style, from calls in flight), the loop that applies
it once a tick (:mod:`~scheduler.scaling.autoscaler`), and per-function admission
(:mod:`~scheduler.scaling.admission`: a cap on calls in flight and a rate).

May import: ``pool``, ``registry`` and the shared modules.
"""

from scheduler.scaling.admission import Throttle
from scheduler.scaling.autoscaler import Autoscaler

__all__ = ["Autoscaler", "Throttle"]
