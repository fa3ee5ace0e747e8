"""The index of dataset examples: a folder's files (folder), JPEGs decoded on the GPU (nvjpeg), the forward that
reduces every block to its channels' maxima (forward), the running top-K (top), building an index (indexer)
over one process or several (sharing), the format on disk (store), reading it back (reader)."""
