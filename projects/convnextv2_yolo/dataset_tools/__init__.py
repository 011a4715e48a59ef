"""Dataset tools: checking a detection dataset before training and converting between YOLO and COCO.

- :mod:`.check_dataset` (with :mod:`.split_sources`, :mod:`.check_splits`, :mod:`.check_problems`,
  :mod:`.check_report`): counts, problems by kind, plots (``tools/misc/check_dataset.py``);
- :mod:`.yolo_to_coco` / :mod:`.coco_to_yolo` (with :mod:`.conversion_report`): the converters
  (``tools/dataset_converters/yolo2coco.py`` / ``coco2yolo.py``).

See docs/dataset_tools.md.
"""
