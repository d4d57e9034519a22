"""The defaults every part of LabelDesk shares, in one place.

Pre-labelling, evaluation, watched models, the CLI and the window offer the same starting
values; defining them once keeps a change from reaching only some of them.
"""

#: Confidence below which a model's box is not offered as a pre-label (Ultralytics' default).
DEFAULT_CONF = 0.25
#: IoU of the model's own non-maximum suppression (Ultralytics' default).
DEFAULT_IOU = 0.7
#: Inference size in pixels (Ultralytics' default).
DEFAULT_IMGSZ = 640
#: Images per inference batch when pre-labelling.
DEFAULT_BATCH = 32
#: The confidence floor a model is run at for evaluation (COCO / Ultralytics val).
EVAL_CONF = 0.001
#: The metric a CI gate compares, and the drop it allows.
DEFAULT_METRIC = "map50_95"
DEFAULT_MAX_DROP = 0.02
