"""Statistics over per-instance scores (README, "Statistics").

`intervals`: the bootstrap of a run's mean and of a paired difference (what the report uses
today), and the cluster bootstrap; `repeats`: a run's headline and a paired difference from
generation and judge repeats, with the variance split into its sources; `significance`: the
paired test matching an outcome, and Holm's correction across a table's comparisons; `power`:
instances and repeats a comparison needs, and the smallest difference a run can detect; `bias`:
a judge's position and length biases; `plots`: the preference-by-length curve drawn.

Only `intervals` (numpy) is imported here; the others load scipy and statsmodels, which the
report needs and a run's start-up does not.
"""

from eval.stats.intervals import RESAMPLES, SEED, Interval, bootstrap, cluster_bootstrap, paired

__all__ = ["RESAMPLES", "SEED", "Interval", "bootstrap", "cluster_bootstrap", "paired"]
