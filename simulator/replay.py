"""`artbandit replay`'s evaluation; it lives in `service.reporting.evaluate` (the dashboard's off-policy
panel tunes with it too, and the service never imports the simulator). Re-exported for existing imports."""

from service.reporting.evaluate import Evaluation, Factory, evaluate, registry_factory

__all__ = ["Evaluation", "Factory", "evaluate", "registry_factory"]
