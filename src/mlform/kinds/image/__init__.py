"""Images declared in images/*.yml: a model, its scoring code and environment, built."""

from mlform.kinds.image.declaring import DECLARING

__all__ = ["DECLARING"]
