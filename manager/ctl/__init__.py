"""The parts of ``vigilctl`` (:mod:`manager.vigilctl`), supervisorctl's twin.

This package is imported on every ``vigilctl`` start, so it and its modules import
only what a one-shot command needs; whatever only ``fg`` needs is imported when ``fg``
runs (``tests/unit/test_ctl_startup.py`` guards this).
"""
