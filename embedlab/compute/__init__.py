"""Computing features for a dataset: the feature cache, the process pool and the Dask backend."""
