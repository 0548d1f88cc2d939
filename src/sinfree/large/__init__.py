"""Out-of-core outputs (issue 23): canvases in chunked stores on disk, processed in tiles with halos, on
this process or a Dask cluster, resumable, written as PNG or pyramidal BigTIFF. See docs/large-outputs.md."""
