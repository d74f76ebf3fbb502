"""ICPI for dynamic manipulation: improvement datasets, predictors and the improver."""
