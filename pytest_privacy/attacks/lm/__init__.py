"""Language models: per-token statistics of a causal LM (:mod:`.likelihood`), the sequence membership
scores read from them (:mod:`.scores`) and extraction by continuing records' prefixes
(:mod:`.extraction`), as DESIGN.md section 10 defines them; :func:`.runner.lm_scores` runs a
reference-free one by name."""

from .scores import lm_lira, lm_loss, min_k, min_k_plus_plus, ref_base, zlib_score

__all__ = ["lm_lira", "lm_loss", "min_k", "min_k_plus_plus", "ref_base", "zlib_score"]
