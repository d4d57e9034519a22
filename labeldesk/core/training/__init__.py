"""Training a model from a dataset version, with its lineage kept both ways.

* :mod:`.child` is the body of the training process: it runs Ultralytics and reports progress
  as JSON lines. It is the only module here that imports torch or ultralytics.
* :mod:`.train` materialises a version exactly as ``export yolo`` writes it (hard links), runs
  the child, and registers the best weights as a model whose bytes are an object in the store.
* :mod:`.runs` holds the training-run records and answers lineage questions.
"""
