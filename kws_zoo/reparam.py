"""Public home of `reparameterize` (the code lives in kws_zoo.export.reparam)."""
from kws_zoo.export.reparam import fold_batchnorm, max_abs_diff, reparameterize

__all__ = ["fold_batchnorm", "max_abs_diff", "reparameterize"]
