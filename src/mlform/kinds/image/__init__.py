"""Images declared in images/*.yml: a model, its scoring code and environment, built."""

from mlform.kinds.image.kind import ImageKind

KIND = ImageKind()
