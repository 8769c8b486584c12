//! Data sources: loaders for dataset files, batching and the data search path.
