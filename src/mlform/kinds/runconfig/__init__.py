"""Running one job (a runconfig, or a pipeline step made into one) on a compute target."""
