"""The task apps. Each `apps/<name>/` has `train.py` and an `APP` entry in its `__init__`."""
