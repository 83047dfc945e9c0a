"""Synthetic stand-ins for machine-translated intermediate data (research question b).

`synth-nli_mt_<lang>` trains an intermediate stage on the synthetic NLI task in `<lang>`, as
`mnli_mt_<lang>` (XNLI-MT) does on real data: same labels, dev set in the training language.
The synthetic languages are parallel by construction (example i is the same meaning in every
language), so this is a perfect "translation": the preview shows the mechanics of the
comparison, not the effect of translation noise.
"""

from __future__ import annotations

from dataclasses import replace

from xtl.data.tasks import REGISTRY, register
from xtl.data.tasks import pair_classification as _nli  # noqa: F401  (registers synth-nli first)

for _language in REGISTRY["synth-nli"].languages:
    if _language != "en":
        register(replace(REGISTRY["synth-nli"], name=f"synth-nli_mt_{_language}",
                         languages=(_language,), train_language=_language, train_task=None,
                         description=f"Synthetic NLI in {_language} as translated "
                                     "intermediate data (xtl.offline.synth)"))
