"""The statistics of a results folder's tables: summary.csv's medians, speed-ups and verdicts (summary), the
winner map (winners), the per-step cost model (cost_model), the four tables computed and written together
(tables), epochs.csv's statistics (epoch_stats), when a run counts as busy (busy) and parity's bands (parity)."""
