"""The model registry and the image registry: versions, files, tags and lineage.

content   model files: scanned, typed (scikit-learn, ONNX, MLflow), stored by content
gate      `register_model.when`: compare a run's metrics with a threshold or `latest`
models    registering, resolving, tagging, archiving and deleting model versions
images    the images built from model versions, and what went into each
"""
