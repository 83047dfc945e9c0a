"""Progress bars that behave in a terminal, in JupyterLab and under papermill.

Under `xtl run` (XTL_HEADLESS=1) bars are plain text, throttled, so an executed notebook holds a
few lines instead of a widget that the HTML report cannot show or a flood of updates.
"""

from __future__ import annotations

import os
import sys
from typing import Any

HEADLESS_ENV = "XTL_HEADLESS"


def headless() -> bool:
    return os.environ.get(HEADLESS_ENV) == "1"


def bar(**kwargs: Any):
    if headless():
        from tqdm.std import tqdm

        return tqdm(mininterval=15, ascii=True, file=sys.stdout, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(mininterval=1, **kwargs)
