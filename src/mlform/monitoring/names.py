"""The names of the data drift metrics, Azure Machine Learning's (`metrics` defines
them). A module of their own because both the formulas (`metrics`) and the counting that
settles them exactly (`samples`) name them, and neither imports the other's module."""

from __future__ import annotations

JENSEN_SHANNON = "jensen_shannon_distance"
WASSERSTEIN = "normalized_wasserstein_distance"
PSI = "population_stability_index"
KOLMOGOROV_SMIRNOV = "two_sample_kolmogorov_smirnov_test"
CHI_SQUARED = "pearsons_chi_squared_test"
